"""Containers: modules made of child modules, with explicit backward."""
from .._parallel import blas_single_thread
from .module import Module, _grad_flags_version


class Container(Module):
    """Base of modules built from children: routes the gradient flags to them.

    Before a forward pass, :meth:`_plan_children_grads` tells each child whether its input
    gradient is needed: when this container's is, or when a trainable parameter lies in an
    earlier child of ``order`` (an input-to-output chain). Recomputed only when some
    ``requires_grad`` / ``needs_input_grad`` / structure changed (a version counter).
    """

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "_grad_plan_key", None)

    def _plan_children_grads(self, chain):
        """Set the flags of the modules in ``chain`` (input to output order)."""
        needed = self._input_grad_needed()
        key = (_grad_flags_version[0], needed)
        if key == self._grad_plan_key:
            return
        for child in chain:
            child._set_upstream_needs_grad(needed)
            trainable = child.has_trainable_parameters()
            # whether calling child.backward computes anything: an input gradient someone
            # needs, or a gradient of a trainable parameter
            object.__setattr__(child, "_backward_active", child._input_grad_needed() or trainable)
            needed = needed or trainable
        object.__setattr__(self, "_grad_plan_key", key)

    def _set_upstream_needs_grad(self, flag):
        if flag != self._upstream_needs_grad:
            super()._set_upstream_needs_grad(flag)
            object.__setattr__(self, "_grad_plan_key", None)

    @staticmethod
    def _backward_needed(child):
        """Whether calling ``child.backward`` computes anything (set by the last plan)."""
        return child.__dict__.get("_backward_active", True)


class Sequential(Container):
    """Layers applied in order; ``backward`` runs them in reverse.

    Backward stops (and returns None) at the first layer, going backwards, below which no
    gradient is needed: a first layer that skips grad_input, or the top of a frozen
    prefix (transfer learning: only the layers after the last frozen one do any work).
    """

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential layer {i} must be a Module, got {type(layer).__name__}")
            setattr(self, str(i), layer)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def forward(self, x):
        layers = self._modules.values()
        self._plan_children_grads(layers)
        # BLAS single-threaded across the whole pass: pinning once here makes the layers'
        # own pins (Linear, im2col) nearly free, and OpenBLAS's spinning pool would
        # otherwise fight the kernels' OpenMP threads (measured 4x slower LeNet-5 steps).
        with blas_single_thread():
            for layer in layers:
                x = layer(x)
        return x

    def backward(self, grad_output):
        with blas_single_thread():
            for layer in reversed(self._modules.values()):
                if not self._backward_needed(layer):
                    return None
                grad_output = layer.backward(grad_output)
                if grad_output is None:
                    return None
        return grad_output
