"""Optimizers over :class:`fastconv.nn.Parameter` lists: SGD (momentum, Nesterov) and Adam.

Update rules are PyTorch's, so hyper-parameters carry over.
"""
import numbers

import numpy as np

from ._kernels import _optim
from ._validation import FLOAT_DTYPES
from .nn.module import Parameter


def _check_float(value, name, minimum=0.0, maximum=None, inclusive_max=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not inclusive_max)):
        raise ValueError(f"{name} must be {'<=' if inclusive_max else '<'} {maximum}, got {value}")
    return value


class Optimizer:
    """Base class: holds the parameters; ``step()`` updates them from their ``.grad``."""

    def __init__(self, params):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a fastconv.nn.Parameter, got {type(p).__name__}")
        self.params = params

    def zero_grad(self):
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        raise NotImplementedError


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
        self._buffers = [None] * len(self.params)

    def step(self):
        """Apply one update to every parameter from its gradient."""
        for i, p in enumerate(self.params):
            first = self._buffers[i] is None
            if self.momentum and first:
                self._buffers[i] = np.zeros_like(p.data)  # the kernel reads it (times 0)
            # Without momentum the kernel never reads buf; the gradient stands in for it.
            buf = self._buffers[i] if self.momentum else p.grad
            if _fusable(p, buf):
                _optim.sgd_update(p.data.reshape(-1), p.grad.reshape(-1), buf.reshape(-1),
                                  self.lr, self.momentum, self.weight_decay, self.nesterov, first)
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                if first:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= p.data.dtype.type(self.lr) * g


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), as ``torch.optim.Adam``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0 (L2 penalty added to the gradient)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params)
        self.lr = _check_float(lr, "lr")
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        self.betas = (_check_float(betas[0], "betas[0]", 0.0, 1.0), _check_float(betas[1], "betas[1]", 0.0, 1.0))
        self.eps = _check_float(eps, "eps")
        self.weight_decay = _check_float(weight_decay, "weight_decay")
        self._m = [np.zeros_like(p.data) for p in self.params]
        self._v = [np.zeros_like(p.data) for p in self.params]
        self.t = 0

    def step(self):
        """Apply one Adam update to every parameter from its gradient."""
        self.t += 1
        b1, b2 = self.betas
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for p, m, v in zip(self.params, self._m, self._v):
            if _fusable(p, m, v):
                _optim.adam_update(p.data.reshape(-1), p.grad.reshape(-1), m.reshape(-1),
                                   v.reshape(-1), self.lr, b1, b2, self.eps, self.weight_decay, self.t)
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(c2) + self.eps
            p.data -= (self.lr / c1) * m / denom


def _fusable(p, *state):
    """True when the compiled update applies: float32/float64, one dtype and shape, all
    C-contiguous.

    Anything else (a parameter a user replaced by a strided view, say) takes the NumPy
    path, which gives the same result more slowly.
    """
    d = p.data
    return d.dtype in FLOAT_DTYPES and all(
        a.dtype == d.dtype and a.shape == d.shape and a.flags.c_contiguous
        for a in (d, p.grad) + state)
