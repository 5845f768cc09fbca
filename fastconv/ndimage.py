"""Drop-ins for ``scipy.ndimage``'s linear filters: correlate, convolve, correlate1d,
convolve1d, sobel and prewitt (SciPy 1.17's contract).

Same arguments, results and errors as SciPy's: the modes 'reflect' (= 'grid-mirror', half-
sample symmetric), 'mirror' (whole-sample), 'nearest', 'wrap' (= 'grid-wrap') and 'constant'
(= 'grid-constant', filled with ``cval``), repeated when the kernel is wider than the input;
``origin`` (one int or one per axis, within SciPy's limits); convolve's flip and origin shift
for even kernels; ``output`` as None (the input's dtype), a dtype, or an array written in
place and returned; correlate/convolve skip taps with ``|w| <= DBL_EPSILON`` (so a NaN or inf
under a zero tap does not spread), the 1-D filters (and so sobel/prewitt) multiply every tap,
as SciPy's do; the double accumulator cast to the output type as SciPy's C code does
(truncation toward zero, integer wrap-around); complex input or weights as real and
imaginary parts.

Computed on fastconv's single-plane kernel (multi-threaded, GIL released): correlate and
convolve for 1-D and 2-D input; correlate1d, convolve1d, sobel and prewitt along any axis of
an n-D input (the array viewed as planes around the filtered axis, no transposed copy).
Arithmetic is float64 for every dtype, as SciPy's (float32 in float32 drifts visibly in
SciPy's own tests: a sum over a 100x100 Gaussian-filtered float32 image; fastconv.filters,
which targets speed, runs float32 in float32), so results differ from SciPy's only by the
order of the sums. Handed to SciPy's own function
(so its result or its error): correlate/convolve of 3-D or higher input or with ``axes``,
input or output dtypes outside bool/integers/float32/float64 (float16, long double, object,
complex output of real input), non-integer origins and non-numeric ``cval``.

SciPy's own n-D correlate reads outside its buffer for 'reflect' when the kernel is more than
about eight times the input's length (values near 1e-322 appear); fastconv gives the repeated
reflection there (what SciPy's correlate1d gives).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Callable

import numpy as np
from scipy.ndimage import _filters as _scipy_filters

from ._compat import normalize_axis_index
from .functional import _fft
from .functional.ndfilter import (
    _cast,
    _clean,
    _needs_exact,
    filter_planes,
    pass1d,
    separable,
)

__all__ = ["convolve", "convolve1d", "correlate", "correlate1d", "prewitt", "sobel"]

#: SciPy's own functions (held before any test plugin points scipy.ndimage at these): the
#: fallbacks, looked up at call time.
SCIPY = {name: getattr(_scipy_filters, name) for name in __all__}

#: ndimage mode -> fastconv.functional.filter boundary rule (for filters the grid-* names
#: are the plain ones; verified against SciPy in tests/test_ndimage.py).
MODES = {"reflect": "symm", "grid-mirror": "symm", "mirror": "mirror", "nearest": "nearest",
         "wrap": "wrap", "grid-wrap": "wrap", "constant": "fill", "grid-constant": "fill"}
_ORIGIN_MSG = ("Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
               "(weights.shape[k]-1) // 2")
_ORIGIN1D_MSG = ("Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
                 "(len(weights)-1) // 2")


class _Fallback(Exception):
    """Raised where SciPy's own function is to compute the result (or raise its error)."""


def _fallback(name: str, *args: Any, **kwargs: Any) -> Any:
    return SCIPY[name](*args, **kwargs)


def _rule(mode: Any) -> str:
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise RuntimeError("boundary mode not supported (mode must be one of "
                           + ", ".join(repr(m) for m in MODES) + ")") from None


def _fast_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in "biu" or dtype.kind == "f" and dtype.itemsize in (4, 8)


_F64 = np.dtype(np.float64)  # SciPy's accumulator for every dtype


def _get_output(output: Any, input: np.ndarray, complex_output: bool = False) -> tuple[Any, np.dtype]:
    """SciPy's output rules: (the array to write or None to allocate, the output dtype)."""
    if output is None:
        if complex_output:
            return None, np.promote_types(input.dtype, np.complex64)
        return None, np.dtype(input.dtype.name)
    if isinstance(output, (type, np.dtype)):
        dtype: np.dtype = np.dtype(output)
        if complex_output and dtype.kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=4)
            dtype = np.promote_types(dtype, np.complex64)
        return None, dtype
    if isinstance(output, str):
        dtype = np.dtype(output)
        if complex_output and dtype.kind != "c":
            raise RuntimeError("output must have complex dtype")
        if not issubclass(dtype.type, np.number):
            raise RuntimeError("output must have numeric dtype")  # noqa: TRY004 (SciPy's type)
        return None, dtype
    output = np.asarray(output)
    if output.shape != input.shape:
        raise RuntimeError("output shape not correct")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError("output must have complex dtype")
    return output, output.dtype


def _store(y: np.ndarray, output: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    if output is None:
        return _cast(y, dtype)
    if dtype.kind == "b":
        y = _cast(y, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        np.copyto(output, y, casting="unsafe")
    return output


def _cval(cval: Any) -> float:
    if isinstance(cval, (str, bytes)) or np.iscomplexobj(cval):
        raise _Fallback
    try:
        return float(cval)
    except (TypeError, ValueError):
        raise _Fallback from None


def _origins(origin: Any, rank: int) -> list[int]:
    """SciPy's _normalize_sequence of ``origin``; integers only (others go to SciPy)."""
    if not isinstance(origin, str) and np.iterable(origin):
        origins = list(origin)
        if len(origins) != rank:
            raise RuntimeError("sequence argument must have length equal to input rank")
    else:
        origins = [origin] * rank
    if not all(isinstance(o, (int, np.integer)) and not isinstance(o, (bool, np.bool_)) for o in origins):
        raise _Fallback  # (SciPy's own rules: bools are refused by correlate, taken by correlate1d)
    return [int(o) for o in origins]


def _invalid_origin(origin: int, k: int) -> bool:
    return origin < -(k // 2) or origin > (k - 1) // 2


# --- complex input or weights: real and imaginary parts (as SciPy) ---

def _via_real(func: Callable[..., np.ndarray], input: np.ndarray, weights: np.ndarray,
              output: np.ndarray, cval: Any, **kwargs: Any) -> np.ndarray:
    ci, cw = input.dtype.kind == "c", weights.dtype.kind == "c"
    if ci and cw:
        func(input.real, weights.real, output=output.real, cval=np.real(cval), **kwargs)
        output.real -= func(input.imag, weights.imag, output=None, cval=np.imag(cval), **kwargs)
        func(input.real, weights.imag, output=output.imag, cval=np.real(cval), **kwargs)
        output.imag += func(input.imag, weights.real, output=None, cval=np.imag(cval), **kwargs)
    elif ci:
        func(input.real, weights, output=output.real, cval=np.real(cval), **kwargs)
        func(input.imag, weights, output=output.imag, cval=np.imag(cval), **kwargs)
    else:
        if np.iscomplexobj(cval):
            raise ValueError("Cannot provide a complex-valued cval when the input is real.")
        func(input, weights.real, output=output.real, cval=cval, **kwargs)
        func(input, weights.imag, output=output.imag, cval=cval, **kwargs)
    return output


def _complex_output(output: Any, input: np.ndarray) -> np.ndarray:
    arr, dtype = _get_output(output, input, complex_output=True)
    return np.zeros(input.shape, dtype) if arr is None else arr


# --- public functions ---

def _check_fft_input(input: np.ndarray, weights: np.ndarray, output: Any, axes: Any) -> None:
    """method='fft' is for 1-D/2-D float or complex data with a float or complex output."""
    if input.ndim not in (1, 2) or axes is not None:
        raise ValueError(f"method='fft' needs 1-D or 2-D input and axes=None; got input.ndim "
                         f"{input.ndim}, axes {axes!r}")
    out_dtype = output.dtype if isinstance(output, np.ndarray) else np.dtype(input.dtype if output is None else output)
    for what, dt in (("input", input.dtype), ("weights", weights.dtype), ("output", out_dtype)):
        if dt.kind not in "fc" or dt.itemsize > 16 or dt == np.float16:
            raise ValueError(f"method='fft' needs float32/float64 (or complex) {what}, got {dt}: integer "
                             f"results must be exact; use method='direct' or 'auto'")


def _correlate_or_convolve(name: str, input: Any, weights: Any, output: Any, mode: Any, cval: Any,
                           origin: Any, convolution: bool, axes: Any, method: Any) -> np.ndarray:
    args = (input, weights, output, mode, cval, origin)
    input = np.asarray(input)
    weights = np.asarray(weights)
    method = _fft.check_method(method, _F64)
    if method == "fft":  # FFT rounding would move integer outputs across truncation steps
        _check_fft_input(input, weights, output, axes)
    if input.ndim not in (1, 2) or axes is not None:
        return _fallback(name, *args, **({} if axes is None else {"axes": axes}))
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c" and not convolution:
            weights = weights.conj()  # as np.correlate: the weights conjugated
        func = convolve if convolution else correlate
        return _via_real(func, input, weights, _complex_output(output, input), cval,
                         mode=mode, origin=origin, method=method)
    weights = np.asarray(weights, dtype=np.float64)
    wshape = [s for s in weights.shape if s > 0]
    if len(wshape) != input.ndim:
        raise RuntimeError(f"weights.ndim ({len(wshape)}) must match len(axes) ({input.ndim})")
    if weights.ndim != input.ndim:
        return _fallback(name, *args)
    try:
        origins = _origins(origin, input.ndim)
        c = _cval(cval)
    except _Fallback:
        return _fallback(name, *args)
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        origins = [-o - (1 - weights.shape[i] % 2) for i, o in enumerate(origins)]
    for o, k in zip(origins, wshape):
        if _invalid_origin(o, k):
            raise ValueError(_ORIGIN_MSG)
    out, dtype = _get_output(output, input)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError("A sequence of modes is not supported")  # noqa: TRY004 (SciPy's type)
    rule = _rule(mode)
    if not (_fast_dtype(input.dtype) and _fast_dtype(dtype)):
        return _fallback(name, *args)
    x = input.reshape(1, 1, -1) if input.ndim == 1 else input[None]
    w = weights.reshape(1, -1) if input.ndim == 1 else weights
    centre = [k // 2 + o for k, o in zip(w.shape, [0] * (2 - input.ndim) + origins)]
    cleaned = _clean(w, (centre[0], centre[1]))
    cdt = _F64
    if cleaned is None:  # every tap skipped: zeros
        y = np.zeros(x.shape, cdt)
    else:
        k, before = cleaned
        if method == "auto" and dtype.kind != "f":  # integer/bool outputs: exact sums only
            method = "direct"
        y = filter_planes(x, k, before, (rule, rule), c, cdt, method=method)
        if _needs_exact([k], y):
            y = filter_planes(x, k, before, (rule, rule), c, cdt, exact=True)
    return _store(y.reshape(input.shape), out, dtype)


def correlate(input: Any, weights: Any, output: Any = None, mode: str = "reflect", cval: float = 0.0,
              origin: Any = 0, *, axes: Any = None, method: str = "direct") -> np.ndarray:
    """Multidimensional correlation: ``scipy.ndimage.correlate`` (same arguments and results).

    ``out[i, j] = sum_{p,q} w[p, q] * ext[i + p - (kH // 2 + origin[0]), j + q - (kW // 2 + origin[1])]``
    over the taps with ``|w| > DBL_EPSILON``, ``ext`` the input extended by ``mode``.

    Parameters
    ----------
    input : array_like, shape (H, W) or (n,)
        bool, integer, float32 or float64 (others, and 3-D or higher input, go to SciPy).
    weights : array_like, shape (kH, kW) or (k,)
        Same number of dimensions as input.
    output : ndarray or dtype, optional
        The array to write (returned) or the output dtype; default the input's dtype.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-mirror', 'grid-constant', 'grid-wrap'}
    cval : scalar
        The value outside the input for 'constant'.
    origin : int or sequence of int
        Shift of the kernel's centre per axis, ``-(k // 2) <= origin <= (k - 1) // 2``.
    axes : None
        Any other value is handed to SciPy.
    method : {'direct', 'auto', 'fft'}, keyword-only
        A fastconv extension: 'direct' (the default, SciPy's results) sums the taps on
        fastconv's kernel; 'fft' (opt-in: its error is normwise, not per output) goes through
        ``scipy.fft`` with the input extended exactly by ``mode`` (float outputs only; a NaN
        or inf then reaches every output); 'auto' picks FFT for large kernels by
        :mod:`fastconv.functional._fft`'s measured cost rule, and always 'direct' for integer
        or bool outputs and for input that is not finite.

    Returns
    -------
    out : ndarray, the input's shape
        Computed in float64, then cast to the output dtype as SciPy casts.
    """
    return _correlate_or_convolve("correlate", input, weights, output, mode, cval, origin, False, axes, method)


def convolve(input: Any, weights: Any, output: Any = None, mode: str = "reflect", cval: float = 0.0,
             origin: Any = 0, *, axes: Any = None, method: str = "direct") -> np.ndarray:
    """Multidimensional convolution: ``scipy.ndimage.convolve`` (same arguments and results).

    :func:`correlate` with the weights flipped and each origin ``o`` replaced by ``-o``
    (``-o - 1`` along axes of even length), as SciPy does. Parameters and returns as
    :func:`correlate`.
    """
    return _correlate_or_convolve("convolve", input, weights, output, mode, cval, origin, True, axes, method)


def correlate1d(input: Any, weights: Any, axis: int = -1, output: Any = None, mode: str = "reflect",
                cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """1-D correlation along ``axis``: ``scipy.ndimage.correlate1d`` (same arguments and results).

    Parameters
    ----------
    input : array_like, any number of dimensions
    weights : array_like, shape (k,)
    axis : int
    output : ndarray or dtype, optional
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-mirror', 'grid-constant', 'grid-wrap'}
    cval : scalar
    origin : int
        ``-(k // 2) <= origin <= (k - 1) // 2``.

    Returns
    -------
    out : ndarray, the input's shape (dtype and arithmetic as :func:`correlate`)
    """
    args = (input, weights, axis, output, mode, cval, origin)
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        return _via_real(correlate1d, input, weights, _complex_output(output, input), cval,
                         axis=axis, mode=mode, origin=origin)
    out, dtype = _get_output(output, input)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise RuntimeError("no filter weights given")
    axis = normalize_axis_index(axis, input.ndim)
    if not isinstance(origin, (int, np.integer)):
        return _fallback("correlate1d", *args)
    if _invalid_origin(origin, len(weights)):
        raise ValueError(_ORIGIN1D_MSG)
    rule = _rule(mode)
    try:
        c = _cval(cval)
    except _Fallback:
        return _fallback("correlate1d", *args)
    if not (_fast_dtype(input.dtype) and _fast_dtype(dtype)):
        return _fallback("correlate1d", *args)
    # SciPy's 1-D filter multiplies every tap (zero and tiny ones too): NaN spreads
    y = pass1d(input, weights, axis, rule, c, int(origin), _F64)
    return _store(y, out, dtype)


def convolve1d(input: Any, weights: Any, axis: int = -1, output: Any = None, mode: str = "reflect",
               cval: float = 0.0, origin: int = 0) -> np.ndarray:
    """1-D convolution along ``axis``: ``scipy.ndimage.convolve1d`` (same arguments and results):
    :func:`correlate1d` with the weights reversed and the origin ``-origin`` (``-origin - 1``
    for an even number of weights)."""
    weights = np.asarray(weights)
    weights = weights[::-1]
    origin = -origin
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":
        weights = weights.conj()  # undone by correlate1d's conjugation
    return correlate1d(input, weights, axis, output, mode, cval, origin)


_DERIVATIVE = np.array([-1.0, 0.0, 1.0])
_SMOOTHING = {"sobel": np.array([1.0, 2.0, 1.0]), "prewitt": np.array([1.0, 1.0, 1.0])}


def _modes(mode: Any, rank: int) -> list[Any]:
    if not isinstance(mode, str) and np.iterable(mode):
        modes = list(mode)
        if len(modes) != rank:
            raise RuntimeError("sequence argument must have length equal to input rank")
        return modes
    return [mode] * rank


def _gradient(name: str, input: Any, axis: int, output: Any, mode: Any, cval: Any) -> np.ndarray:
    args = (input, axis, output, mode, cval)
    input = np.asarray(input)
    if input.dtype.kind == "c":
        return _fallback(name, *args)
    axis = normalize_axis_index(axis, input.ndim)
    out, dtype = _get_output(output, input)
    if dtype == np.bool_:  # SciPy keeps each pass's raw byte (npy_bool)v, not 0/1: its own code
        return _fallback(name, *args)
    modes = _modes(mode, input.ndim)
    rules = [_rule(m) for m in modes]
    try:
        c = _cval(cval)
    except _Fallback:
        return _fallback(name, *args)
    if not (_fast_dtype(input.dtype) and _fast_dtype(dtype)):
        return _fallback(name, *args)
    passes = [(axis, _DERIVATIVE, rules[axis], c)]
    passes += [(ii, _SMOOTHING[name], rules[ii], c) for ii in range(input.ndim) if ii != axis]
    dtypes = [_F64] * input.ndim
    return _store(separable(input, passes, dtypes, between=dtype), out, dtype)


def sobel(input: Any, axis: int = -1, output: Any = None, mode: Any = "reflect", cval: float = 0.0) -> np.ndarray:
    """Sobel derivative along ``axis``: ``scipy.ndimage.sobel`` (same arguments and results).

    Correlation with [-1, 0, 1] along ``axis``, then with [1, 2, 1] along every other axis,
    each pass stored in the output's dtype (as SciPy does), as 1-D passes on fastconv's kernel
    (every tap multiplied, as SciPy's 1-D filters: a NaN spreads over the zero tap too).

    Parameters
    ----------
    input : array_like, any number of dimensions
    axis : int
    output : ndarray or dtype, optional
    mode : str or sequence of str (one per axis)
    cval : scalar

    Returns
    -------
    out : ndarray, the input's shape
    """
    return _gradient("sobel", input, axis, output, mode, cval)


def prewitt(input: Any, axis: int = -1, output: Any = None, mode: Any = "reflect", cval: float = 0.0) -> np.ndarray:
    """Prewitt derivative along ``axis``: ``scipy.ndimage.prewitt`` (same arguments and
    results): as :func:`sobel` with the smoothing [1, 1, 1]."""
    return _gradient("prewitt", input, axis, output, mode, cval)

