"""The optimizer base class and the compiled-update plan every optimizer shares."""
import numbers

import numpy as np

from .._validation import FLOAT_DTYPES
from ..nn.module import Parameter


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
    """Base class: holds the parameters; ``step()`` updates them from their ``.grad``.

    Frozen parameters (``requires_grad=False``) are skipped by ``step()``: they keep their
    values and their optimizer state (momentum, moments) is left untouched.
    """

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
        parameter's ``data`` or ``grad`` was replaced or its ``requires_grad`` changed);
        ``states[i]`` are parameter i's state arrays."""
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
        self.trainable = [p.requires_grad for p in params]
        by_dtype = {}
        self.numpy_indices = []
        for i, arrays in enumerate(self.arrays):
            if not self.trainable[i]:
                continue
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
                   and p.requires_grad == trainable
                   for p, arrays, trainable in zip(params, self.arrays, self.trainable))


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
