"""Argument checking shared by the functional API and the layers.

Every message names the argument and the expected form, in the style of NumPy/SciPy
(``ValueError`` for a bad value, ``TypeError`` for a bad type).
"""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def choice_error(name: str, choices: Any, value: Any, hint: str = "") -> ValueError:
    """The ValueError of an unknown option: ``name``, the choices in their table's order
    (then ``hint``), and the value given. One format for every string option."""
    listed = ", ".join(repr(c) for c in choices)
    return ValueError(f"{name} must be one of {listed}{hint}, got {value!r}")


def check_choice(value: Any, name: str, choices: Any) -> Any:
    """``choices[value]`` when ``choices`` is a mapping (an option table), else the
    sequence's own entry equal to ``value`` (the canonical object, not the caller's);
    :func:`choice_error` when ``value`` is not among them. Membership is by hash, so
    arrays and other unhashable values are refused instead of compared elementwise."""
    table = choices if hasattr(choices, "keys") else {c: c for c in choices}
    try:
        return table[value]
    except (KeyError, TypeError):  # TypeError: an unhashable value cannot be a key
        raise choice_error(name, choices, value) from None


def check_float_dtype(dtype: Any, name: str = "dtype") -> np.dtype[Any]:
    """``np.dtype(dtype)`` if it is float32 or float64, else a TypeError naming ``name``."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{name} must be float32 or float64, got {dtype!r}") from e
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {dt}")
    return dt


def check_int(value: Any, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int, requiring an integer (not bool) >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if value < minimum:
        kind = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` as a bool, requiring a bool (not 0/1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_pair(value: Any, name: str, minimum: int = 1) -> tuple[int, int]:
    """Return ``(a, b)`` from an int or a pair of ints, each >= minimum."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(
                f"{name} must be an int or a pair of ints, got a sequence of length {len(value)}"
            )
        return (check_int(value[0], name, minimum), check_int(value[1], name, minimum))
    if isinstance(value, np.ndarray) and value.shape == (2,):
        return check_pair(tuple(value.tolist()), name, minimum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int or a pair of ints, got {type(value).__name__} {value!r}"
        )
    v = check_int(value, name, minimum)
    return (v, v)


def check_array(x: Any, name: str, ndim: int, shape_doc: str) -> np.ndarray[Any, np.dtype[Any]]:
    """Return ``x`` as a C-contiguous, native-byte-order float32/float64 ndarray.

    Non-contiguous, Fortran-ordered and byte-swapped inputs are copied; read-only inputs
    are used as they are (kernels only read them).
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{name} must be a numpy.ndarray of shape {shape_doc}, got {type(x).__name__}"
        )
    if x.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D with shape {shape_doc}, got shape {x.shape}")
    if x.dtype not in FLOAT_DTYPES:
        if x.dtype.kind == "f" and x.dtype.itemsize in (4, 8):  # non-native byte order
            x = x.astype(x.dtype.newbyteorder("="))
        else:
            raise TypeError(f"{name} must have dtype float32 or float64, got {x.dtype}")
    return np.ascontiguousarray(x)


def check_same_dtype(**arrays: Any) -> np.dtype[Any]:
    """Raise TypeError unless every non-None array has the same dtype; return that dtype."""
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in present.values()}
    if len(dtypes) > 1:
        names = ", ".join(f"{k}: {v.dtype}" for k, v in present.items())
        raise TypeError(
            f"{', '.join(present)} must share one dtype (float32 or float64); got {names}"
        )
    return next(iter(dtypes))


def _memory_limit_bytes():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 46


def check_allocation(shape: tuple[int, ...], dtype: Any, name: str) -> int:
    """Raise before allocating an array the machine cannot hold.

    Linux overcommits, so ``np.empty`` of 200 GB can "succeed" and the process is killed
    later while filling it; a clear ``MemoryError`` up front is what users need.
    """
    n = 1
    for s in shape:
        n *= int(s)
    nbytes = n * np.dtype(dtype).itemsize
    if nbytes > _memory_limit_bytes():
        raise MemoryError(
            f"{name} would need {nbytes / 2**30:.1f} GiB (shape {tuple(shape)}, {np.dtype(dtype)}), "
            f"more than this machine's {_memory_limit_bytes() / 2**30:.1f} GiB of memory"
        )
    return n
