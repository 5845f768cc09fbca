"""The plane engine behind fastconv.ndimage and fastconv.filters: planes (N, H, W) extended
by per-axis boundary rules (row rule, column rule) and correlated by a 2-D kernel on
fastconv's single-plane kernel (or its FFT path), with SciPy ndimage's conventions: windows
that may lie off-centre (origins), the skipping of taps with |w| <= DBL_EPSILON, casts of
the float accumulator to the output type as SciPy's C code casts, and separable 1-D passes.
No argument checks here: the public modules validate.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from . import _fft
from .filter import _correlate_real, source_map

_EPS = float(np.finfo(np.float64).eps)  # SciPy skips taps with |w| <= DBL_EPSILON


def _cast(y: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The float accumulator cast as SciPy's C code casts it (truncation, wrap-around)."""
    if y.dtype == dtype:
        return y
    with np.errstate(invalid="ignore", over="ignore"):
        if dtype.kind == "b":  # SciPy stores (npy_bool)(unsigned char)value
            return y.astype(np.uint8) != 0
        return y.astype(dtype)



def _clean(w: np.ndarray, centre: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """SciPy's tap skipping: taps with |w| <= DBL_EPSILON dropped, the kernel cropped to the
    rest; (kernel, taps before the centre per axis, possibly negative), None when no tap is left."""
    w = np.where(np.abs(w) > _EPS, w, 0.0)
    rows, cols = np.nonzero(w)
    if not rows.size:
        return None
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return w[r0:r1, c0:c1], (centre[0] - int(r0), centre[1] - int(c0))


def _taps_exact(x: np.ndarray, w: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: float,
                dtype: np.dtype, oh: int, ow: int) -> np.ndarray:
    """The same correlation tap by tap over the nonzero taps only (SciPy's order): NaN or inf
    under a zero tap stays out of the sum."""
    N, H, W = x.shape
    xp = np.full((N, H + 1, W + 1), fill, dtype)  # row/column -1 of the maps: the fill value
    xp[:, :H, :W] = x
    xe = xp[:, rmap][:, :, cmap]
    y = np.zeros((N, oh, ow), dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN silently, as in SciPy's C loop
        for p, q in zip(*np.nonzero(w)):
            y += dtype.type(w[p, q]) * xe[:, p:p + oh, q:q + ow]
    return y


def filter_planes(x: np.ndarray, w: np.ndarray, before: tuple[int, int], rules: tuple[str, str],
                  fill: float, dtype: np.dtype, exact: bool = False, method: str = "direct") -> np.ndarray:
    """``out[n, i, j] = sum_{p,q} w[p, q] * ext[n, i + p - before[0], j + q - before[1]]`` for
    planes x (N, H, W), ``ext`` the planes extended by ``rules`` (row rule, column rule) and
    ``fill``; a new (N, H, W) array of float ``dtype``. ``before`` may be negative or exceed
    the kernel (the window lies off-centre). ``exact`` sums the nonzero taps only (NumPy);
    ``method`` (canonical: 'direct', 'fft' or 'auto') picks the direct kernel or the FFT."""
    N, H, W = x.shape
    kh, kw = w.shape
    if not (N and H and W):
        return np.zeros((N, H, W), dtype)
    br, bc = max(before[0], 0), max(before[1], 0)
    ar, ac = max(kh - 1 - before[0], 0), max(kw - 1 - before[1], 0)
    rmap = source_map(H, br, ar, rules[0])
    cmap = source_map(W, bc, ac, rules[1])
    oh, ow = H + br + ar - kh + 1, W + bc + ac - kw + 1
    if exact:
        y = _taps_exact(x, w, rmap, cmap, fill, dtype, oh, ow)
    elif method != "direct" and _fft.use_fft(method, x, w, rmap, cmap, fill, dtype, (oh, ow)):
        y = _fft.correlate_fft(x, w, rmap, cmap, fill, dtype, (oh, ow))
    else:
        y = _correlate_real(x, w, fill, (rmap, cmap, bc), dtype, (oh, ow))
    sr, sc = br - before[0], bc - before[1]
    if sr or sc or oh != H or ow != W:
        y = y[:, sr:sr + H, sc:sc + W]
    return y


def _needs_exact(kernels: Iterable[np.ndarray], y: np.ndarray) -> bool:
    """True when a kernel has a zero tap inside and the result is not all finite: then a NaN or
    inf may have come in through a zero tap, which SciPy skips."""
    if not any((k == 0).any() for k in kernels):
        return False
    with np.errstate(over="ignore", invalid="ignore"):
        return not np.isfinite(y.sum())


def pass1d(x: np.ndarray, w: np.ndarray, axis: int, rule: str, fill: float, origin: int,
           dtype: np.dtype, exact: bool = False) -> np.ndarray:
    """One 1-D correlation of the n-D array x along ``axis`` (SciPy's correlate1d: centre
    ``len(w) // 2 + origin``), weights already cleaned; a new array of float ``dtype``.

    x is viewed as planes: (1, rows, n) with a (1, k) kernel for the last axis, else
    (before, n, after) with a (k, 1) kernel; a C-contiguous x is not copied."""
    shape = x.shape
    n = shape[axis]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1:], dtype=np.int64))
    centre = len(w) // 2 + origin
    if axis == x.ndim - 1:
        y = filter_planes(x.reshape(1, outer, n), w.reshape(1, -1), (0, centre), ("fill", rule),
                          fill, dtype, exact)
    else:
        y = filter_planes(x.reshape(outer, n, inner), w.reshape(-1, 1), (centre, 0), (rule, "fill"),
                          fill, dtype, exact)
    return y.reshape(shape)


def separable(x: np.ndarray, passes: list[tuple[int, np.ndarray, str, float]], dtypes: list[np.dtype],
              between: np.dtype | None = None, skip_zero_taps: bool = False) -> np.ndarray:
    """1-D passes (axis, weights, rule, fill) applied in turn, the i-th in ``dtypes[i]``
    (cast to ``between`` after each pass, as SciPy's sobel stores each pass in its output).
    Every tap is multiplied (SciPy's 1-D filters), unless ``skip_zero_taps`` (the n-D
    filter's rule): then recomputed tap by tap when a zero tap may have met a NaN or inf
    (see :func:`_needs_exact`).

    The one separable pipeline behind ndimage's sobel/prewitt and fastconv.filters."""
    def run(exact: bool) -> np.ndarray:
        y = x
        for (axis, w, rule, fill), dt in zip(passes, dtypes):
            y = pass1d(y, w, axis, rule, fill, 0, dt, exact)
            if between is not None:
                y = _cast(y, between)
        return y

    kernels = [w for _, w, _, _ in passes]
    y = run(False)
    if not skip_zero_taps:
        return y
    if y.dtype.kind == "f":
        suspect = _needs_exact(kernels, y)
    else:  # a NaN cast to an integer on the way: look at the input instead
        suspect = x.dtype.kind == "f" and _needs_exact(kernels, x)
    return run(True) if suspect else y
