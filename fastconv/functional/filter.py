"""Single-plane 2-D filtering with SciPy's boundaries: the engine behind ``fastconv.signal``
and :func:`filter2d`.

A stack of planes ``(N, H, W)`` is extended by its boundary rule ("fill" with a value,
"wrap" periodic, "symm" mirrored with the edge repeated, as ``np.pad(..., 'symmetric')``,
repeatedly when the extension is wider than the plane) and correlated 'valid' with one 2-D
kernel by fastconv's single-plane kernel (``_kernels/_filter.pyx``: blocks of output rows of
all N planes in one parallel call, GIL released; each block reads its source rows in place
through a table of row pointers built from the row source map, copies only the few border
columns into a small strip through the column map, and sums every tap in registers, 4
output rows at a time on AVX-512). Every tap is multiplied, zeros included, so NaN and inf
propagate as in a plain sum. Integer data are accumulated exactly: in float64 when every
partial sum is below 2**53 in magnitude, otherwise by a tap loop in int64 arithmetic
(modulo 2**64); the result is cast to the output type with wrap-around.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .._kernels import _filter
from .._parallel import get_num_threads
from .._validation import check_choice
from . import _fft

#: boundary name -> canonical rule (SciPy's spellings).
BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
              "symm": "symm", "symmetric": "symm"}
#: mode name -> (start of the output in 'full' coordinates for correlate, for convolve);
#: computed per kernel size by :func:`output_window`.
MODES = ("full", "same", "valid")

_EXACT_F64 = 2.0 ** 53



def fill_value(fillvalue: Any, dtype: np.dtype) -> np.ndarray:
    """SciPy's conversion of ``fillvalue`` to the output type (boundary 'fill' only): a 0-d
    array of ``dtype``; ValueError for values that do not convert (NaN or out-of-range into
    integers, complex into reals, arrays of more than one element). The one rule behind
    fastconv.signal, :func:`filter2d` and fastconv.dask."""
    try:
        fill = np.asarray(fillvalue, dtype=dtype)
    except Exception:  # SciPy retries through complex, then refuses
        tmp = np.asarray(fillvalue, dtype=np.complex128)
        tmp.astype(dtype)
        raise ValueError("could not cast `fillvalue` directly to the output type "
                         "(it was first converted to complex).") from None
    if fill.size != 1:
        if fill.size == 0:
            raise ValueError("`fillvalue` cannot be an empty array.")
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    return fill.reshape(())



def output_window(mode: str, size: int, k: int, convolve: bool) -> tuple[int, int, int]:
    """(output length, extension before, extension after) along one axis of length ``size``.

    Output index ``i`` of the 'full' correlation reads extended input ``i - (k-1) .. i``.
    'same' starts at ``k // 2`` for correlate2d and ``(k - 1) // 2`` for convolve2d
    (SciPy's two conventions: they differ for even k); 'valid' at ``k - 1``.
    """
    if mode == "full":
        n, start = size + k - 1, 0
    elif mode == "same":
        n, start = size, ((k - 1) // 2 if convolve else k // 2)
    else:
        n, start = size - k + 1, k - 1
    return n, k - 1 - start, start + n - size


def _fold(idx: np.ndarray, n: int, rule: str) -> np.ndarray:
    """Source indices in [0, n) for extended indices ``idx`` under a boundary rule."""
    if rule == "wrap":
        return idx % n
    if rule == "nearest":  # ndimage's 'nearest': the edge sample repeated
        return np.clip(idx, 0, n - 1)
    if rule == "mirror":  # ndimage's 'mirror': period 2n - 2, edge not repeated (n == 1: it)
        if n == 1:
            return np.zeros_like(idx)
        m2: np.ndarray = idx % (2 * n - 2)
        return np.where(m2 < n, m2, 2 * n - 2 - m2)
    m: np.ndarray = idx % (2 * n)  # symm: period 2n, edge sample repeated
    return np.where(m < n, m, 2 * n - 1 - m)


def _source_map(n: int, before: int, after: int, rule: str) -> np.ndarray:
    idx = np.arange(-before, n + after, dtype=np.intp)
    if rule == "fill" or n == 0:
        return np.where((idx >= 0) & (idx < n), idx, -1).astype(np.intp)
    return _fold(idx, n, rule).astype(np.intp)


@functools.lru_cache(maxsize=128)
def _source_map_cached(n: int, before: int, after: int, rule: str) -> np.ndarray:
    m = _source_map(n, before, after, rule)
    m.flags.writeable = False
    return m


#: Longest map kept in the cache (longer ones cost little next to the filtering).
_CACHED_MAP_MAX = 4096


def source_map(n: int, before: int, after: int, rule: str) -> np.ndarray:
    """Source index of each extended index ``-before .. n + after - 1`` (-1: the fill value).

    Read-only; maps up to ``_CACHED_MAP_MAX`` long are cached (the NumPy calls that build
    one cost ~3 us, a quarter of a small call's overhead)."""
    if n + before + after <= _CACHED_MAP_MAX:
        return _source_map_cached(n, before, after, rule)
    m = _source_map(n, before, after, rule)
    m.flags.writeable = False
    return m


def extend_planes(x: np.ndarray, top: int, bottom: int, left: int, right: int, rule: str,
                  fill: Any = 0, dtype: Any = None) -> np.ndarray:
    """``x`` (N, H, W) extended by the boundary rule into a new C-contiguous array (the
    integer path; float planes are extended row by row inside the kernel)."""
    N, H, W = x.shape
    dtype = np.dtype(x.dtype if dtype is None else dtype)
    out = np.empty((N, H + top + bottom, W + left + right), dtype)
    if rule == "fill":
        if top or bottom or left or right:  # the border strips only
            out[:, :top] = fill
            out[:, top + H:] = fill
            out[:, top:top + H, :left] = fill
            out[:, top:top + H, left + W:] = fill
        out[:, top:top + H, left:left + W] = x
        return out
    if (top or bottom) and H == 0 or (left or right) and W == 0:
        raise ValueError(f"boundary {rule!r} cannot extend an empty axis (input shape {x.shape[1:]})")
    out[:, top:top + H, left:left + W] = x
    if top:
        out[:, :top, left:left + W] = x[:, _fold(np.arange(-top, 0), H, rule), :]
    if bottom:
        out[:, top + H:, left:left + W] = x[:, _fold(np.arange(H, H + bottom), H, rule), :]
    if left:
        out[:, :, :left] = out[:, :, left + _fold(np.arange(-left, 0), W, rule)]
    if right:
        out[:, :, left + W:] = out[:, :, left + _fold(np.arange(W, W + right), W, rule)]
    return out


def _correlate_float(xe: np.ndarray, k: np.ndarray) -> np.ndarray:
    """'valid' correlation of extended float planes (N, Hp, Wp) with k (kh, kw), same dtype
    (fastconv's single-plane kernel, _kernels/_filter.pyx)."""
    N, Hp, Wp = xe.shape
    kh, kw = k.shape
    out = np.empty((N, Hp - kh + 1, Wp - kw + 1), xe.dtype)
    if out.size and kh and kw:
        _filter.correlate_valid(np.ascontiguousarray(xe), np.ascontiguousarray(k, dtype=xe.dtype), out,
                                get_num_threads())
    else:
        out[...] = 0
    return out


def _correlate_real(x: np.ndarray, k: np.ndarray, fill: Any, maps: tuple, dtype: np.dtype,
                    out_hw: tuple[int, int]) -> np.ndarray:
    """Planes x (N, H, W) extended by ``maps`` (row map, column map, left) inside the kernel
    and correlated 'valid' with k: float32/float64 ``dtype``."""
    y = np.empty((x.shape[0],) + tuple(out_hw), dtype)
    rmap, cmap, left = maps
    _filter.correlate_extended(np.ascontiguousarray(x, dtype=dtype), rmap, cmap, left,
                               dtype.type(fill), np.ascontiguousarray(k, dtype=dtype), y,
                               get_num_threads())
    return y


def _correlate_int(xe: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Exact integer 'valid' correlation modulo 2**64 (int64 result)."""
    # no copy when already int64 (uint64: the same bits, modulo 2**64)
    xi: np.ndarray = xe.astype(np.int64, copy=False) if xe.dtype != np.uint64 else xe.view(np.int64)
    ki: np.ndarray = k.astype(np.int64, copy=False) if k.dtype != np.uint64 else k.view(np.int64)
    kh, kw = k.shape
    N, Hp, Wp = xe.shape
    oh, ow = Hp - kh + 1, Wp - kw + 1
    # bound on every partial sum: exact in float64 below 2**53
    # (extremes as Python ints: no full-size temporary, no overflow of abs(int64 min))
    xmax = float(max(-int(xi.min()), int(xi.max()))) if xi.size else 0.0
    bound = xmax * float(np.sum(np.abs(ki.astype(np.float64))))
    if bound < _EXACT_F64 and xi.size and ki.size:
        y = _correlate_float(xi.astype(np.float64), ki.astype(np.float64))
        return y.astype(np.int64)
    y = np.zeros((N, oh, ow), np.int64)
    with np.errstate(over="ignore"):
        for i in range(kh):
            for j in range(kw):
                y += ki[i, j] * xi[:, i:i + oh, j:j + ow]
    return y


def correlate_planes(x: np.ndarray, k: np.ndarray, mode: str, rule: str, fill: Any,
                     convolve: bool, out_dtype: np.dtype, method: str = "direct") -> np.ndarray:
    """SciPy-semantics 2-D correlation (or convolution) of each plane of ``x`` (N, H, W) with
    ``k`` (kh, kw); arguments already validated; ``fill`` already of ``out_dtype``.

    out_dtype is float32/float64, complex64/complex128 or a numpy integer type. ``method``
    (canonical, :func:`fastconv.functional._fft.check_method`): "direct", "fft" or "auto"
    (float/complex data only; see :mod:`fastconv.functional._fft`).
    """
    N, H, W = x.shape
    kh, kw = k.shape
    oh, top, bottom = output_window(mode, H, kh, convolve)
    ow, left, right = output_window(mode, W, kw, convolve)
    if oh < 0 or ow < 0:
        raise ValueError("negative dimensions are not allowed")
    if N == 0 or oh == 0 or ow == 0:
        return np.empty((N, oh, ow), out_dtype)
    if kh == 0 or kw == 0:  # no taps: every sum is empty
        return np.zeros((N, oh, ow), out_dtype)
    if convolve:
        k = k[::-1, ::-1]
    kind = out_dtype.kind
    if kind in "fc":  # extended on the fly, a few rows at a time, inside the kernel
        if rule != "fill" and ((top or bottom) and H == 0 or (left or right) and W == 0):
            raise ValueError(f"boundary {rule!r} cannot extend an empty axis (input shape {(H, W)})")
        maps = (source_map(H, top, bottom, rule), source_map(W, left, right, rule), left)
        if method != "direct" and _fft.use_fft(method, x, k, maps[0], maps[1], fill, out_dtype, (oh, ow)):
            return _fft.correlate_fft(x, k, maps[0], maps[1], fill, out_dtype, (oh, ow))  # functional/_fft.py
        if kind == "f":
            return _correlate_real(x, k, fill, maps, out_dtype, (oh, ow))
        # complex: (a + ib) * (c + id) = (ac - bd) + i(ad + bc), four real correlations
        real = np.dtype(np.float32 if out_dtype == np.complex64 else np.float64)
        xc, kc, fc = x.astype(out_dtype, copy=False), k.astype(out_dtype), np.asarray(fill, out_dtype)
        xr, xi, kr, ki = xc.real, xc.imag, kc.real, kc.imag
        fr, fi = fc.real.astype(real), fc.imag.astype(real)
        y = np.empty((N, oh, ow), out_dtype)
        y.real = (_correlate_real(xr, kr, fr, maps, real, (oh, ow))
                  - _correlate_real(xi, ki, fi, maps, real, (oh, ow)))
        y.imag = (_correlate_real(xr, ki, fr, maps, real, (oh, ow))
                  + _correlate_real(xi, kr, fi, maps, real, (oh, ow)))
        return y
    xe = extend_planes(x, top, bottom, left, right, rule, fill, out_dtype)
    y = _correlate_int(xe, k.astype(out_dtype, copy=False))
    if out_dtype == np.uint64:
        return y.view(np.uint64)
    return y.astype(out_dtype)


def filter2d(images: Any, kernel: Any, mode: str = "same", boundary: str = "fill", fillvalue: Any = 0,
             *, convolve: bool = False, method: str = "direct") -> np.ndarray:
    """Correlate (or convolve) every plane of a stack with one 2-D kernel, in one parallel call.

    Each plane follows ``scipy.signal.correlate2d`` (``convolve2d`` when ``convolve=True``)
    with the same ``mode``, ``boundary`` and ``fillvalue`` (a complex kernel is conjugated
    for correlation, as SciPy does), without its 'valid'-mode
    operand swap: the kernel must fit in the plane for ``mode='valid'``.

    Parameters
    ----------
    images : array_like, shape (..., H, W)
        Real or complex numbers or integers (not bool); any layout.
    kernel : array_like, shape (kH, kW)
    mode : {"full", "same", "valid"}
    boundary : {"fill", "pad", "wrap", "circular", "symm", "symmetric"}
    fillvalue : scalar
        The value outside the planes for boundary "fill", converted to the output dtype by
        SciPy's rule (:func:`fill_value`: NaN or an out-of-range value for an integer output
        is a ValueError, not a silent cast).
    convolve : bool
        Flip the kernel (convolution) instead of correlating.
    method : {"direct", "auto", "fft"}
        "direct" (the default): fastconv's kernel, every output summed tap by tap;
        "fft": ``scipy.fft`` (float/complex only; its error is normwise, about
        eps * log2(P) * ||plane|| * sum|k|, so outputs much smaller than the plane's largest
        values lose relative accuracy, and NaN or inf in a plane makes that whole output
        plane NaN); "auto": the cheaper of the two by a measured cost model, direct for
        integers and non-finite data (:mod:`fastconv.functional._fft`). Opt-in, because
        the FFT's accuracy is not the direct sum's.

    Returns
    -------
    out : ndarray, shape (..., OH, OW), dtype ``np.result_type(images, kernel)``
        OH = H + kH - 1 ('full'), H ('same'), H - kH + 1 ('valid').
    """
    x = np.asarray(images)
    k = np.asarray(kernel)
    if x.ndim < 2:
        raise ValueError(f"images must have shape (..., H, W) with at least 2 dimensions, got shape {x.shape}")
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D with shape (kH, kW), got shape {k.shape}")
    mode = check_choice(mode, "mode", MODES)
    rule = check_choice(boundary, "boundary", BOUNDARIES)
    if not isinstance(convolve, (bool, np.bool_)):
        raise TypeError(f"convolve must be a bool, got {type(convolve).__name__}")
    dtype = np.result_type(x, k)
    if dtype.kind not in "iufc" or dtype.itemsize > 16 or dtype in (np.float16, np.longdouble, np.clongdouble):
        raise TypeError(f"images and kernel must be integer, float32/64 or complex64/128 arrays; "
                        f"got {x.dtype} and {k.dtype}")
    if mode == "valid" and (k.shape[0] > x.shape[-2] or k.shape[1] > x.shape[-1]):
        raise ValueError(f"mode='valid' needs the kernel {k.shape} to fit in the planes {x.shape[-2:]}")
    fill = fill_value(fillvalue, dtype)
    lead = x.shape[:-2]
    planes = x.reshape((-1,) + x.shape[-2:])
    if not convolve:
        k = k.conj()  # correlate2d's conjugate of the kernel (complex kernels only)
    y = correlate_planes(planes, k, mode, rule, fill, bool(convolve), dtype, _fft.check_method(method, dtype))
    return y.reshape(lead + y.shape[1:])


#: edge-filter family -> (outer, centre) integer weights of its 3-tap smoothing.
EDGE_SMOOTHING = {"sobel": (1.0, 2.0), "prewitt": (1.0, 1.0), "scharr": (3.0, 10.0)}
#: what gradient_planes returns -> the kernel's code.
GRADIENT_OUTPUTS = {"magnitude": 0, "axis0": 1, "axis1": 2}
_GRADIENT_TYPES = {np.dtype(np.float32): (np.float32, np.float64), np.dtype(np.float64): (np.float64,),
                   np.dtype(np.uint8): (np.float64,), np.dtype(np.uint16): (np.float64,)}


def gradient_planes(x: np.ndarray, family: str, rules: tuple[str, str], fill: float, factor: float,
                    out_dtype: Any, output: str = "magnitude") -> np.ndarray:
    """Both 3x3 gradients of the 2-D image ``x`` (H, W) in one fused pass (kernel
    ``_filter.gradient_planes``): ``gx`` = derivative [-1, 0, 1] (correlation) along axis 0
    smoothed by the family's (s0, s1, s0) along axis 1, ``gy`` the same with the axes swapped,
    on ``x`` extended by ``rules`` (row rule, column rule: canonical boundary names) and ``fill``
    (in ``x``'s units). Returns a new C-contiguous (H, W) array of ``out_dtype``:
    ``factor * sqrt(gx**2 + gy**2)`` (``output='magnitude'``), ``factor * gx`` ('axis0') or
    ``factor * gy`` ('axis1').

    The derivative's zero tap is skipped (a NaN does not spread over it); the sums are those
    of two separable 1-D passes. ``x``: float32 (``out_dtype`` float32 or float64), float64,
    uint8 or uint16 (float64; arithmetic in float32, exact for these integers). Arguments are
    checked by the caller (fastconv.filters)."""
    x = np.ascontiguousarray(x)
    out_dtype = np.dtype(out_dtype)
    if out_dtype.type not in _GRADIENT_TYPES.get(x.dtype, ()):
        raise TypeError(f"gradient_planes: no {x.dtype} -> {out_dtype} kernel")
    H, W = x.shape
    out = np.empty((H, W), out_dtype)
    if not out.size:
        return out
    s0, s1 = check_choice(family, "family", EDGE_SMOOTHING)
    which = check_choice(output, "output", GRADIENT_OUTPUTS)
    rmap, cmap = source_map(H, 1, 1, rules[0]), source_map(W, 1, 1, rules[1])
    fillrow = np.full(W, fill, x.dtype)
    _filter.gradient_planes(x, rmap, cmap, fillrow, float(fill), s0, s1, float(factor), which, out,
                            get_num_threads())
    return out
