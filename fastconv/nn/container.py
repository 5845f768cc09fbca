"""Containers: modules made of child modules, with explicit backward."""
from .._parallel import blas_single_thread
from .module import Module


class Sequential(Module):
    """Layers applied in order; ``backward`` runs them in reverse.

    A layer whose backward returns None (a first layer that skips grad_input) ends the
    backward pass.
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
        # BLAS single-threaded across the whole pass: pinning once here makes the layers'
        # own pins (Linear, im2col) nearly free, and OpenBLAS's spinning pool would
        # otherwise fight the kernels' OpenMP threads (measured 4x slower LeNet-5 steps).
        with blas_single_thread():
            for layer in self._modules.values():
                x = layer(x)
        return x

    def backward(self, grad_output):
        with blas_single_thread():
            for layer in reversed(self._modules.values()):
                grad_output = layer.backward(grad_output)
                if grad_output is None:
                    return None
        return grad_output
