"""Optimizers over :class:`fastconv.nn.Parameter` lists: SGD (momentum, Nesterov) and Adam.

Update rules are PyTorch's, so hyper-parameters carry over.
"""
import numbers

import numpy as np

from ._kernels import _optim
from ._parallel import get_num_threads
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
        self._plan = None

    def zero_grad(self):
        """Set every parameter's gradient to zero."""
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        raise NotImplementedError

    def _compiled_plan(self, states):
        """The :class:`_UpdatePlan` for the parameters as they are now (rebuilt when a
        parameter's ``data`` or ``grad`` was replaced); ``states[i]`` are parameter i's
        state arrays."""
        plan = self._plan
        if plan is None or not plan.matches(self.params):
            plan = self._plan = _UpdatePlan(self.params, states)
        return plan


class _UpdatePlan:
    """What one compiled update call per dtype needs: the addresses of every parameter's
    data, gradient and state arrays, and their element offsets laid end to end.

    It holds references to those arrays, so the addresses stay valid while it exists;
    :meth:`matches` tells whether the parameters still use the same (writeable) arrays.
    Parameters the compiled loop cannot take (not C-contiguous, mixed dtypes, read-only)
    are listed in ``numpy_indices`` for the NumPy rule.
    """

    def __init__(self, params, states):
        self.arrays = [(p.data, p.grad) + tuple(st) for p, st in zip(params, states)]
        by_dtype = {}
        self.numpy_indices = []
        for i, arrays in enumerate(self.arrays):
            if _fusable(*arrays):
                by_dtype.setdefault(arrays[0].dtype, []).append(i)
            else:
                self.numpy_indices.append(i)
        self.groups = []
        for dtype, members in by_dtype.items():
            # addresses[k, j]: array k (data, grad, state...) of the group's parameter j
            addresses = np.array([[a.ctypes.data for a in self.arrays[i]] for i in members],
                                 np.intp).T.copy()
            offsets = np.zeros(len(members) + 1, np.intp)
            offsets[1:] = np.cumsum([self.arrays[i][0].size for i in members])
            self.groups.append((dtype == np.float64, addresses, offsets))

    def matches(self, params):
        return all(p.data is arrays[0] and p.grad is arrays[1] and arrays[0].flags.writeable
                   for p, arrays in zip(params, self.arrays))


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
        plan = self._compiled_plan(list(zip(self._m, self._v)))
        n_threads = get_num_threads()
        for is_double, addresses, offsets in plan.groups:
            _optim.adam_update(addresses, offsets, is_double, self.lr, b1, b2, self.eps,
                               self.weight_decay, self.t, n_threads)
        c1 = 1 - b1**self.t
        c2 = 1 - b2**self.t
        for i in plan.numpy_indices:
            p, m, v = self.params[i], self._m[i], self._v[i]
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v) / np.sqrt(c2) + self.eps
            p.data -= (self.lr / c1) * m / denom


def _fusable(data, *others):
    """True when the compiled update applies to a parameter's arrays (data first, then its
    gradient and state): float32/float64, one dtype and shape, all C-contiguous, data and
    state writeable.

    Anything else (a parameter a user replaced by a strided view, say) takes the NumPy
    path, which gives the same result more slowly.
    """
    return data.dtype in FLOAT_DTYPES and data.flags.writeable and all(
        a.dtype == data.dtype and a.shape == data.shape and a.flags.c_contiguous
        for a in (data,) + others) and all(a.flags.writeable for a in others[1:])
