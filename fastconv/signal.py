"""Drop-in replacements for ``scipy.signal.correlate2d`` and ``scipy.signal.convolve2d``.

Same contract point by point (SciPy 1.17): modes 'full'/'same'/'valid' (each function's own
'same' window for even kernels), the 'valid'-mode operand swap (and correlate2d's reversal of
the swapped result), boundaries 'fill'/'pad', 'wrap'/'circular', 'symm'/'symmetric'
(repeated mirroring when the kernel is wider than the image), ``fillvalue`` conversion and its
errors, output dtype ``np.result_type(in1, in2)`` with integer wrap-around, and SciPy's error
types and messages. Differences: where SciPy dies with SIGFPE (an empty axis extended by
'symm'/'wrap' in 'full' mode) a ValueError is raised.

float32/float64 run on fastconv's direct convolution kernel (multi-threaded, GIL released);
integers are accumulated exactly (float64 when exact, else int64 modulo 2**64) and cast
with wrap-around; complex64/complex128 are computed from four real correlations
(``(a+ib)*(c+id)``: ``ac - bd`` and ``ad + bc``) on the same kernel. long double, complex
long double and types SciPy rejects (bool, float16, object, ...) are handed to SciPy's own
C routine, so they give SciPy's result or SciPy's error.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .functional import _fft
from .functional.filter import correlate_planes, fill_value

__all__ = ["correlate2d", "convolve2d"]

# SciPy's option tables (scipy.signal._signaltools._modedict / _boundarydict) and messages.
_MODES = {"valid": "valid", "same": "same", "full": "full"}
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symm", "symmetric": "symm", "reflect": None}
_MODE_MSG = "Acceptable mode flags are 'valid', 'same', or 'full'."
_BOUNDARY_MSG = ("Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), "
                 "and 'symmetric' (or 'symm').")
_FAST_KINDS = "iufc"


def _inputs_swap_needed(mode: str, shape1: tuple, shape2: tuple) -> bool:
    if mode != "valid":
        return False
    ok1 = all(a >= b for a, b in zip(shape1, shape2))
    ok2 = all(b >= a for a, b in zip(shape1, shape2))
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least "
                         "as large as the other in every dimension")
    return not ok1


def _option(table: dict, value: Any, message: str) -> Any:
    try:
        return table[value]
    except KeyError as e:  # unhashable values raise TypeError, as in SciPy
        raise ValueError(message) from e


def _fast_dtype(dtype: np.dtype) -> bool:
    return (dtype.kind in _FAST_KINDS
            and dtype not in (np.float16, np.longdouble, np.clongdouble))


def _compute(in1: np.ndarray, in2: np.ndarray, convolve: bool, mode: str, boundary: Any,
             fillvalue: Any, method: Any = "direct") -> np.ndarray:
    rule = _option(_BOUNDARIES, boundary, _BOUNDARY_MSG)
    dtype = np.result_type(in1, in2).newbyteorder("=")
    method = _fft.check_method(method, dtype)
    H, W = in1.shape
    kh, kw = in2.shape
    if (rule in ("symm", "wrap") and mode == "full" and 0 in (H, W)
            and H + kh > 1 and W + kw > 1):  # SciPy: SIGFPE (a modulo by the empty axis)
        raise ValueError(f"boundary {boundary!r} cannot extend an empty axis (input shape {in1.shape})")
    if rule is None or not _fast_dtype(dtype):
        from scipy.signal import _sigtools  # SciPy's own C routine (never a patched one)
        val = {"valid": 0, "same": 1, "full": 2}[mode]
        bval = {None: 16, "fill": 0, "symm": 4, "wrap": 8}[rule]
        return _sigtools._convolve2d(in1, in2, int(convolve), val, bval, fillvalue)
    fill = fill_value(fillvalue, dtype) if rule == "fill" else np.zeros((), dtype)
    y = correlate_planes(in1[None], in2, mode, rule, fill, convolve, dtype, method)
    return y[0]


def convolve2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill",
               fillvalue: Any = 0, *, method: str = "direct") -> np.ndarray:
    """Convolve two 2-D arrays: ``scipy.signal.convolve2d`` (same arguments and results).

    Parameters
    ----------
    in1 : array_like, shape (H, W)
    in2 : array_like, shape (kH, kW)
    mode : {'full', 'valid', 'same'}
    boundary : {'fill', 'pad', 'wrap', 'circular', 'symm', 'symmetric'}
    fillvalue : scalar
        Outside value for boundary 'fill', converted to the output dtype.
    method : {'direct', 'auto', 'fft'}, keyword only (not in SciPy)
        'direct' (the default: SciPy's results): fastconv's kernel; 'fft': ``scipy.fft``
        with fastconv's threads (float32/64 and complex only, ValueError otherwise; its
        error is normwise, so outputs far smaller than the image's largest values lose
        relative accuracy, and NaN or inf spread to every output); 'auto': the cheaper by a
        measured cost model, always direct for integers and for non-finite data (see
        :mod:`fastconv.functional._fft`).

    Returns
    -------
    out : ndarray, shape (H + kH - 1, W + kW - 1) 'full', (H, W) 'same', (H - kH + 1, W - kW + 1)
        'valid' (operands swapped when in2 is the larger), dtype ``np.result_type(in1, in2)``.
    """
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    if not in1.ndim == in2.ndim == 2:
        raise ValueError("convolve2d inputs must both be 2-D arrays")
    if _inputs_swap_needed(mode, in1.shape, in2.shape):
        in1, in2 = in2, in1
    mode = _option(_MODES, mode, _MODE_MSG)
    return _compute(in1, in2, True, mode, boundary, fillvalue, method)


def correlate2d(in1: Any, in2: Any, mode: str = "full", boundary: str = "fill",
                fillvalue: Any = 0, *, method: str = "direct") -> np.ndarray:
    """Cross-correlate two 2-D arrays: ``scipy.signal.correlate2d`` (same arguments and results).

    ``out[i, j] = sum_{p, q} in1_ext[i + p - a, j + q - b] * conj(in2[p, q])`` with
    (a, b) = (kH - 1, kW - 1) for 'full', (kH // 2, kW // 2) for 'same' (not convolve2d's
    ((kH - 1) // 2, (kW - 1) // 2)), (0, 0) for 'valid'; ``in1_ext`` is in1 extended by the
    boundary rule. In 'valid' mode with in2 the larger array, the operands are swapped and
    the result reversed in both axes, as SciPy does.

    Parameters and returns as :func:`convolve2d`.
    """
    in1 = np.asarray(in1)
    in2 = np.asarray(in2)
    if not in1.ndim == in2.ndim == 2:
        raise ValueError("correlate2d inputs must both be 2-D arrays")
    swapped = _inputs_swap_needed(mode, in1.shape, in2.shape)
    if swapped:
        in1, in2 = in2, in1
    mode = _option(_MODES, mode, _MODE_MSG)
    out = _compute(in1, in2.conj(), False, mode, boundary, fillvalue, method)
    if swapped:
        out = out[::-1, ::-1]
    return out
