"""Gradient utilities, as ``torch.nn.utils``."""
from __future__ import annotations

import math
from typing import Iterable
import numbers

import numpy as np

from .module import Parameter

__all__ = ["clip_grad_norm_"]


def _norm_type(norm_type):
    if isinstance(norm_type, str) and norm_type == "inf":
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a float (or 'inf'), got {type(norm_type).__name__} {norm_type!r}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be > 0 (or inf), got {norm_type}")
    return norm_type


def _grad_norm(grads, norm_type):
    """The norm of all gradients' elements together, in float64."""
    if not grads:
        return 0.0
    if norm_type == math.inf:
        # np.max propagates nan (Python's max would depend on the order)
        return float(np.max([np.max(np.abs(g)) if g.size else 0.0 for g in grads]))
    total = 0.0
    for g in grads:
        x = np.asarray(g, np.float64).ravel()
        if norm_type == 2.0:
            total += float(x @ x)
        elif norm_type == 1.0:
            total += float(np.abs(x).sum())
        else:
            total += float((np.abs(x) ** norm_type).sum())
    if norm_type == 2.0:
        return math.sqrt(total)
    return total if norm_type == 1.0 else total ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Parameter | Iterable[Parameter], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients of ``parameters`` in place so that their total norm is at most
    ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``.

    Parameters
    ----------
    parameters : Parameter or iterable of Parameter
        Frozen ones (``requires_grad=False``) are left out, as PyTorch leaves out
        parameters without a gradient.
    max_norm : float
    norm_type : float or "inf", default 2
        The p of the p-norm over all gradient elements together (> 0; inf: largest
        absolute value).
    error_if_nonfinite : bool, default False
        Raise when the total norm is nan or inf instead of scaling by it.

    Returns
    -------
    float
        The total norm of the gradients before clipping (computed in float64).

    Notes
    -----
    As PyTorch, every gradient is multiplied by ``min(1, max_norm / (total + 1e-6))``; a
    factor of 1 is skipped, so gradients whose total norm is at most ``max_norm - 1e-6``
    (about) keep their exact values.

    Raises
    ------
    RuntimeError
        With ``error_if_nonfinite``, when the total norm is nan or inf.
    """
    if isinstance(parameters, Parameter):
        parameters = [parameters]
    elif isinstance(parameters, (str, bytes, np.ndarray)) or not hasattr(parameters, "__iter__"):
        raise TypeError(f"parameters must be a Parameter or an iterable of them, got {type(parameters).__name__}")
    else:
        parameters = list(parameters)
    for i, p in enumerate(parameters):
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters[{i}] must be a fastconv.nn.Parameter, got {type(p).__name__}")
    if isinstance(max_norm, bool) or not isinstance(max_norm, numbers.Real):
        raise TypeError(f"max_norm must be a float, got {type(max_norm).__name__} {max_norm!r}")
    max_norm = float(max_norm)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm}")
    norm_type = _norm_type(norm_type)
    if not isinstance(error_if_nonfinite, (bool, np.bool_)):
        raise TypeError(f"error_if_nonfinite must be a bool, got {type(error_if_nonfinite).__name__}")
    grads = [p.grad for p in parameters if p.requires_grad]
    total = _grad_norm(grads, norm_type)
    if not math.isfinite(total):
        if error_if_nonfinite:
            raise RuntimeError(f"The total norm of order {norm_type} of the gradients is non-finite "
                               f"({total}), so it cannot be clipped; pass error_if_nonfinite=False to "
                               "scale the gradients by it anyway")
    coef = max_norm / (total + 1e-6)
    if coef < 1.0 or math.isnan(coef):
        for g in grads:
            np.multiply(g, g.dtype.type(coef), out=g)
    return total
