"""Parameter initialisation (PyTorch's ``torch.nn.init`` formulas) and the layers' defaults.

Every public function fills ``tensor`` in place and returns it: a
:class:`~fastconv.nn.Parameter` (its ``.data``) or a float ndarray. Random ones draw from
``rng`` (a ``numpy.random.Generator``, an int seed, or None for fastconv's global generator,
see :func:`fastconv.manual_seed`).

Fans (:func:`_calculate_fan_in_and_fan_out`, as PyTorch) of a weight of shape
``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``, ``fan_out = out * prod(kernel)``.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, TypeVar

import numpy as np

from .._random import get_rng
from .._validation import check_choice, check_float_dtype, choice_error
from .._typing import NDArray, RNGLike
from .module import Parameter

_T = TypeVar("_T", Parameter, NDArray[Any])  # a Parameter or an array, returned as given


def _check_dtype(dtype):
    return check_float_dtype(dtype)


def _uniform(rng, bound, shape, dtype):
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _array_of(tensor):
    """The ndarray that an init function fills: ``tensor.data`` or ``tensor`` itself."""
    array = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"tensor must be a fastconv.nn.Parameter or a float numpy.ndarray, got {type(tensor).__name__}"
        )
    if array.dtype.kind != "f":
        raise TypeError(f"tensor must have a float dtype, got {array.dtype}")
    if not array.flags.writeable:
        raise ValueError("tensor is read-only: init functions fill it in place")
    return array


def _check_real(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _leaky_relu_gain(param):
    if param is None:
        negative_slope = 0.01
    elif isinstance(param, (bool, np.bool_)) or not isinstance(param, numbers.Real):
        # torch raises ValueError here too
        raise ValueError(f"param (negative_slope) {param!r} is not a valid number")
    else:
        negative_slope = float(param)
    return math.sqrt(2.0 / (1 + negative_slope**2))


_GAINS = {
    "linear": lambda param: 1.0,
    "conv1d": lambda param: 1.0,
    "conv2d": lambda param: 1.0,
    "conv3d": lambda param: 1.0,
    "conv_transpose1d": lambda param: 1.0,
    "conv_transpose2d": lambda param: 1.0,
    "conv_transpose3d": lambda param: 1.0,
    "sigmoid": lambda param: 1.0,
    "tanh": lambda param: 5.0 / 3,
    "relu": lambda param: math.sqrt(2.0),
    "leaky_relu": _leaky_relu_gain,
    "selu": lambda param: 3.0 / 4,
}

_FAN_MODES = {"fan_in": 0, "fan_out": 1}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``).

    ===================== ==========================
    nonlinearity          gain
    ===================== ==========================
    linear, conv*d, conv_transpose*d, sigmoid   1
    tanh                  5/3
    relu                  sqrt(2)
    leaky_relu            sqrt(2 / (1 + param**2)), param (the negative slope) default 0.01
    selu                  3/4
    ===================== ==========================

    Raises
    ------
    ValueError
        An unknown nonlinearity (the message lists the choices) or a non-numeric ``param``
        for leaky_relu (both as PyTorch).
    """
    return check_choice(nonlinearity, "nonlinearity", _GAINS)(param)


def _calculate_fan_in_and_fan_out(tensor):
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)`` (PyTorch's rule)."""
    shape = np.shape(tensor.data if isinstance(tensor, Parameter) else tensor)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions, "
            f"got shape {tuple(shape)}"
        )
    receptive_field = 1
    for s in shape[2:]:
        receptive_field *= int(s)
    return int(shape[1]) * receptive_field, int(shape[0]) * receptive_field


def _fan(array, mode):
    index = _FAN_MODES.get(mode.lower()) if isinstance(mode, str) else None  # any case, as torch
    if index is None:
        raise choice_error("mode", _FAN_MODES, mode)
    return _calculate_fan_in_and_fan_out(array)[index]


def _kaiming_std(array, a, mode, nonlinearity):
    fan = _fan(array, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(tensor: _T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                     rng: RNGLike = None) -> _T:
    """Fill ``tensor`` from U(-bound, bound), ``bound = gain * sqrt(3 / fan)`` (He et al. 2015).

    Parameters
    ----------
    tensor : Parameter or float ndarray, at least 2-D
    a : float
        The negative slope of the leaky_relu that follows (the gain's ``param``).
    mode : {"fan_in", "fan_out"}
        "fan_in" keeps the forward pass's variance, "fan_out" the backward pass's.
    nonlinearity : str
        As :func:`calculate_gain` ("relu" or "leaky_relu" recommended).
    rng : numpy.random.Generator, int or None

    Returns
    -------
    tensor
        The same object, filled in place. A tensor with no elements is left alone (a
        warning, as PyTorch).
    """
    array = _array_of(tensor)
    if array.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(array, a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    array[...] = get_rng(rng).uniform(-bound, bound, size=array.shape)
    return tensor


def kaiming_normal_(tensor: _T, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", *,
                    rng: RNGLike = None) -> _T:
    """Fill ``tensor`` from N(0, std**2), ``std = gain / sqrt(fan)`` (He et al. 2015).

    Parameters as :func:`kaiming_uniform_`; returns ``tensor``.
    """
    array = _array_of(tensor)
    if array.size == 0:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    std = _kaiming_std(array, a, mode, nonlinearity)
    array[...] = get_rng(rng).normal(0.0, std, size=array.shape)
    return tensor


def _xavier_std(array, gain):
    """The std, or None for a tensor with no elements (fans may be 0)."""
    gain = _check_real(gain, "gain")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(array)
    if array.size == 0:
        return None
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def xavier_uniform_(tensor: _T, gain: float = 1.0, *, rng: RNGLike = None) -> _T:
    """Fill ``tensor`` from U(-a, a), ``a = gain * sqrt(6 / (fan_in + fan_out))``
    (Glorot & Bengio 2010).

    Parameters
    ----------
    tensor : Parameter or float ndarray, at least 2-D
    gain : float
    rng : numpy.random.Generator, int or None

    Returns
    -------
    tensor
        Filled in place (one with no elements is left alone).
    """
    array = _array_of(tensor)
    std = _xavier_std(array, gain)
    if std is not None:
        bound = math.sqrt(3.0) * std
        array[...] = get_rng(rng).uniform(-bound, bound, size=array.shape)
    return tensor


def xavier_normal_(tensor: _T, gain: float = 1.0, *, rng: RNGLike = None) -> _T:
    """Fill ``tensor`` from N(0, std**2), ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Parameters as :func:`xavier_uniform_`; returns ``tensor``.
    """
    array = _array_of(tensor)
    std = _xavier_std(array, gain)
    if std is not None:
        array[...] = get_rng(rng).normal(0.0, std, size=array.shape)
    return tensor


def constant_(tensor: _T, val: float) -> _T:
    """Fill ``tensor`` with the number ``val``; returns ``tensor``."""
    array = _array_of(tensor)
    if isinstance(val, (bool, np.bool_)) or not isinstance(val, numbers.Real):
        raise TypeError(f"val must be a real number, got {type(val).__name__} {val!r}")
    array[...] = val
    return tensor


def zeros_(tensor: _T) -> _T:
    """Fill ``tensor`` with zeros; returns ``tensor``."""
    return constant_(tensor, 0.0)


def ones_(tensor: _T) -> _T:
    """Fill ``tensor`` with ones; returns ``tensor``."""
    return constant_(tensor, 1.0)
