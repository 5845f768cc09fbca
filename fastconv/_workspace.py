"""Reusing a layer's large per-step arrays when nothing else still refers to them.

A LeNet-5 step allocates ~8 MB of activations and gradients; fresh allocations of that
size come from new pages, and the page faults cost ~15% of a step (measured 200 faults,
0.33 ms per 2 ms step). A layer therefore keeps its output arrays and writes the next
step's values into them, but only when the previous array has not escaped: if the caller,
a view or another layer still holds it, a new array is allocated instead, so reuse is
never visible. Whether an array escaped is read from its reference count, calibrated once
at import (interpreters differ in how many references a call adds); where reference counts
are unavailable, arrays are never reused.
"""
import sys

import numpy as np


class Workspace:
    """Arrays owned by one layer, keyed by role (``"out"``, ``"grad_input"``, ...)."""

    __slots__ = ("_arrays",)

    def __init__(self):
        self._arrays = {}

    def empty(self, key, shape, dtype):
        """An uninitialised array of ``shape`` and ``dtype``: last step's if unshared."""
        arr = self._arrays.get(key)
        if (arr is not None and arr.shape == shape and arr.dtype == dtype
                and _UNSHARED_REFS is not None and sys.getrefcount(arr) == _UNSHARED_REFS):
            return arr
        arr = np.empty(shape, dtype)
        self._arrays[key] = arr
        return arr

    def clear(self):
        """Drop every kept array (they are freed once nothing else refers to them)."""
        self._arrays.clear()


def _calibrate():
    # The count getrefcount reports inside Workspace.empty for an array held only by the
    # workspace; measured through the same statements, so interpreter details cancel out.
    if sys.implementation.name != "cpython" or not hasattr(sys, "getrefcount"):
        return None
    if not getattr(sys, "_is_gil_enabled", lambda: True)():
        return None  # free-threaded builds defer reference counts

    probe = {"a": np.empty(1)}

    def measure(arrays, key):
        arr = arrays.get(key)
        return sys.getrefcount(arr)

    unshared = measure(probe, "a")
    held = probe["a"]  # noqa: F841 - a second owner must raise the count by exactly one
    if measure(probe, "a") != unshared + 1:
        return None
    return unshared


_UNSHARED_REFS = _calibrate()
