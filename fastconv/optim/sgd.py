"""Stochastic gradient descent (momentum, Nesterov, weight decay), as ``torch.optim.SGD``."""
import numpy as np

from .._kernels import _optim
from .._parallel import get_num_threads
from .optimizer import Optimizer, _check_float


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float
    momentum : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradient: ``g + weight_decay * p``.
    nesterov : bool, default False

    Notes
    -----
    ``b = momentum * b + g`` (``b = g`` on the first step), then ``p -= lr * b``, or with
    Nesterov ``p -= lr * (g + momentum * b)``.
    """

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params)
        self.lr = _check_float(lr, "lr")
        self.momentum = _check_float(momentum, "momentum")
        self.weight_decay = _check_float(weight_decay, "weight_decay")
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov must be a bool, got {type(nesterov).__name__}")
        if nesterov and self.momentum == 0:
            raise ValueError("nesterov=True requires momentum > 0")
        self.nesterov = bool(nesterov)
        # Momentum buffers; the first step sets them to the gradient (read times 0 before).
        self._buffers = [np.zeros_like(p.data) for p in self.params] if self.momentum else None
        self._first_step = True

    def step(self):
        """Apply one update to every parameter from its gradient."""
        first, self._first_step = self._first_step, False
        if self.momentum:
            plan = self._compiled_plan([(b,) for b in self._buffers])
        else:
            plan = self._compiled_plan([()] * len(self.params))
        n_threads = get_num_threads()
        for is_double, addresses, offsets in plan.groups:
            _optim.sgd_update(addresses, offsets, is_double, self.lr, self.momentum,
                              self.weight_decay, self.nesterov, first, n_threads)
        for i in plan.numpy_indices:
            p = self.params[i]
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = self._buffers[i]
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= p.data.dtype.type(self.lr) * g
