"""FFT correlation of a stack of planes with one kernel, and the ``method="auto"`` rule.

:func:`correlate_fft` computes exactly what :func:`fastconv.functional.filter.correlate_planes`
computes (same arguments after its window arithmetic, same output), up to floating rounding:
each plane is extended by its boundary rule through the same row/column source maps the
direct kernel reads (:func:`~fastconv.functional.filter.source_map`; ``-1`` is the fill
value), so every rule the maps support works here unchanged, then correlated 'valid' with the
kernel as a linear convolution with the reversed kernel by ``scipy.fft.rfft2``/``irfft2``
(``fft2``/``ifft2`` for complex data) over ``scipy.fft.next_fast_len`` sizes, with
``workers = fastconv.get_num_threads()``. Boundary ``fill`` with a zero fill value skips the
extension: the plane is transformed zero-padded with the smallest size whose circular
aliasing misses the output window. Planes go through in chunks of at most
:data:`CHUNK_BYTES` of transforms (at least one plane), so memory stays bounded for any stack.

Accuracy. float32 data are transformed in single precision (scipy.fft keeps the type) and
float64 in double. The error of an FFT correlation is normwise, not per output: every output
carries an absolute error up to about ``eps * log2(P) * ||x_ext||_2 * ||k||_1`` (``P`` the
transform size, ``x_ext`` the extended plane), which is at most ``eps * log2(P) * sum|x| *
sum|k|``. The direct path's error is local (``eps * kh*kw * sum of |x||k|`` over each output's
own window), so outputs much smaller than the plane's energy are relatively less accurate by
FFT. NaN and inf anywhere in a plane (or the kernel, or a used fill value) make every output
of that plane NaN by FFT, not only the outputs whose window holds them.

Choice (:func:`use_fft`). ``"direct"`` never, ``"fft"`` always (float32/64 and complex64/128
only: integer results must be exact and are refused by :func:`check_method`), ``"auto"`` by
a cost model of the two paths on this machine::

    direct: d0 + (a * kh*kw + c) * N*OH*OW            (x 4 for complex: four real passes)
    fft:    f0 + b * (2N + 1/2) * P * log2(P)         (x 2 for complex: full-size transforms)

(``P = L1 * L2`` the padded transform size; each plane forward and back, the kernel once:
its kh rows, then the columns, about half a transform). The constants are measured at run time (1 thread, CPU time: the kernels of
:func:`calibrate`) once per process and dtype and kept in the autotune plan file, so
``fastconv.plans()`` lists them as ``filter-cost <dtype> <isa>`` entries. Under
``FASTCONV_AUTOTUNE=off`` (or ``"cache"`` without a plan) the static constants
:data:`STATIC_COSTS` are used: measured the same way on the development machine (AMD EPYC
Zen 5, AVX-512 build), so the choice is deterministic. Problems whose static estimates
differ by more than :data:`CLEAR_FACTOR` in either direction are decided without
calibrating (a 3x3 filter never pays for a measurement). 'auto' picks the FFT only for
float/complex data whose planes, kernel and used fill value are all finite
(``np.isfinite`` checked only when the FFT would be picked), so NaN stays local as in the
direct path. Integer data always go direct under 'auto'.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from .._parallel import get_num_threads

#: method name -> canonical method (one table; :func:`check_method` lists the choices).
METHODS = {"auto": "auto", "direct": "direct", "fft": "fft"}
#: Largest bytes of transforms (plus the extended planes) held at once for one chunk of planes.
CHUNK_BYTES = 64 << 20
#: 'auto' decides from the static constants alone when one path's estimate is this many
#: times the other's (no calibration run).
CLEAR_FACTOR = 4.0
#: Static cost constants in nanoseconds (d0, a, c, f0, b) per real dtype: direct overhead
#: per call, per tap per output, per output; FFT overhead per call, per point*log2(point)
#: of one transform. Measured by :func:`calibrate` (1 thread, CPU time, best of runs) on
#: AMD EPYC Zen 5 (2 cores, AVX-512 build), fastconv 0.x.
STATIC_COSTS: dict[str, tuple[float, float, float, float, float]] = {
    "float32": (20000.0, 0.034, 0.29, 200000.0, 0.45),
    "float64": (18000.0, 0.060, 0.88, 180000.0, 0.76),
}
_COST_NAMES = ("d0", "a", "c", "f0", "b")


def check_method(method: Any, dtype: np.dtype) -> str:
    """The canonical ``method`` (ValueError listing the choices); ValueError for "fft" on
    data that is not float32/float64/complex64/complex128 (integers must stay exact)."""
    from .filter import check_choice

    m: str = check_choice(method, "method", METHODS)
    if m == "fft" and not fft_dtype(dtype):
        raise ValueError(f"method='fft' needs float32/float64/complex64/complex128 data (integer results "
                         f"must be exact): got {np.dtype(dtype)}; use method='direct' or 'auto', or cast "
                         f"the input to float64")
    return m


def fft_dtype(dtype: Any) -> bool:
    """Whether the FFT path computes this output dtype."""
    return np.dtype(dtype) in (np.float32, np.float64, np.complex64, np.complex128)


def _axis_plan(n: int, rmap: np.ndarray, k: int, out: int, zero_outside: bool) -> tuple[int, int, int]:
    """(source length, start of the output in the circular result, transform length) along
    one axis: the source is the plane itself (``zero_outside``: only fill values around it)
    or its extension by the map; output index i reads source[i + start - (k - 1) .. i + start]."""
    if zero_outside:
        src, off = n, int(np.argmax(rmap >= 0)) if n else 0  # source 0 = extended index off
    else:
        src, off = rmap.size, 0
    n0 = k - 1 - off  # first output in the linear convolution with the reversed kernel
    need = max(src + k - 1 - n0, n0 + out, src, k)  # no aliasing onto the output window
    return src, n0, int(need)


def _fill_pattern(m: np.ndarray, n: int) -> bool:
    """Whether the map is fill values, then 0..n-1, then fill values (boundary 'fill')."""
    inside = m >= 0
    if not inside.any():
        return n == 0
    first = int(np.argmax(inside))
    return bool(np.array_equal(m[first:first + n], np.arange(n)) and not inside[first + n:].any()
                and not inside[:first].any())


def _plan(x_shape: tuple[int, ...], k_shape: tuple[int, int], rmap: np.ndarray, cmap: np.ndarray,
          fill: Any, out_hw: tuple[int, int], complex_: bool) -> tuple[bool, tuple, tuple, tuple[int, int]]:
    """(zero_outside, row plan, column plan, (L1, L2))."""
    from scipy.fft import next_fast_len

    _, H, W = x_shape
    zero = (bool(np.all(np.asarray(fill) == 0)) and _fill_pattern(rmap, H) and _fill_pattern(cmap, W))
    rp = _axis_plan(H, rmap, k_shape[0], out_hw[0], zero)
    cp = _axis_plan(W, cmap, k_shape[1], out_hw[1], zero)
    L1 = next_fast_len(rp[2], real=not complex_)
    L2 = next_fast_len(cp[2], real=not complex_)
    return zero, rp, cp, (int(L1), int(L2))


def _gather(a: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``a.take(m, axis)`` for a source map's in-range entries ``m``: runs of consecutive
    indices (the plane itself, wrapped periods) copied as slices, the rest gathered."""
    n = m.size
    out = np.empty(a.shape[:axis] + (n,) + a.shape[axis + 1:], a.dtype)
    src = np.moveaxis(a, axis, 0)
    dst = np.moveaxis(out, axis, 0)
    breaks = np.flatnonzero(np.diff(m) != 1) + 1
    starts = np.concatenate(([0], breaks))
    stops = np.concatenate((breaks, [n]))
    rest: list[int] = []
    for i, j in zip(starts.tolist(), stops.tolist()):
        if j - i >= 8:
            dst[i:j] = src[m[i]:m[i] + (j - i)]
        else:
            rest.extend(range(i, j))
    if rest:
        r = np.asarray(rest, np.intp)
        dst[r] = src[m[r]]
    return out


def _extend(x: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any, dtype: np.dtype) -> np.ndarray:
    """Planes x (n, H, W) extended through the source maps (-1: ``fill``), as the kernel reads them."""
    n, H, W = x.shape
    rin, cin = rmap >= 0, cmap >= 0
    if not (H and W and rin.any() and cin.any()):
        return np.full((n, rmap.size, cmap.size), fill, dtype)
    out = _gather(_gather(np.asarray(x, dtype), np.where(rin, rmap, 0), 1), np.where(cin, cmap, 0), 2)
    if not rin.all():
        out[:, ~rin] = fill
    if not cin.all():
        out[:, :, ~cin] = fill
    return out


def correlate_fft(x: np.ndarray, k: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any,
                  out_dtype: np.dtype, out_hw: tuple[int, int]) -> np.ndarray:
    """'valid' correlation of the planes x (N, H, W), extended through the source maps
    (``rmap``: extended row -> source row or -1 for ``fill``; ``cmap`` for columns), with k
    (kh, kw) (already reversed for convolution), by FFT; shape (N, OH, OW) of ``out_dtype``
    (float32/float64/complex64/complex128). Same contract as the direct kernel."""
    import scipy.fft as sfft

    N = x.shape[0]
    oh, ow = out_hw
    complex_ = out_dtype.kind == "c"
    zero, (s1, n01, _), (s2, n02, _), (L1, L2) = _plan(x.shape, k.shape, rmap, cmap, fill, out_hw, complex_)
    workers = get_num_threads()
    kr = np.ascontiguousarray(np.asarray(k, out_dtype)[::-1, ::-1])
    y = np.empty((N, oh, ow), out_dtype)
    if zero and 0 in x.shape:  # nothing but zeros around an empty plane
        y[...] = 0
        return y
    # the kernel's transform: its kh rows along the columns first, then the full columns
    if complex_:
        fwd: Callable[..., np.ndarray] = sfft.fft2
        K = sfft.fft(sfft.fft(kr, n=L2, axis=1, workers=workers), n=L1, axis=0, workers=workers)
        spec_cols = L2
    else:
        fwd = sfft.rfft2
        K = sfft.fft(sfft.rfft(kr, n=L2, axis=1, workers=workers), n=L1, axis=0, workers=workers)
        spec_cols = L2 // 2 + 1
    item = np.dtype(out_dtype).itemsize
    spec_item = item if complex_ else 2 * item
    per_plane = 2 * L1 * spec_cols * spec_item + s1 * s2 * item + L1 * L2 * item
    chunk = max(1, CHUNK_BYTES // max(per_plane, 1))
    for i in range(0, N, chunk):
        xs = x[i:i + chunk]
        src = np.asarray(xs, out_dtype) if zero else _extend(xs, rmap, cmap, fill, out_dtype)
        X = fwd(src, s=(L1, L2), axes=(-2, -1), workers=workers)
        del src
        X *= K
        if complex_:
            full = sfft.ifft2(X, s=(L1, L2), axes=(-2, -1), workers=workers, overwrite_x=True)
        else:
            full = sfft.irfft2(X, s=(L1, L2), axes=(-2, -1), workers=workers, overwrite_x=True)
        del X
        y[i:i + chunk] = full[:, n01:n01 + oh, n02:n02 + ow]
    return y


# --------------------------------------------------------------------------------------
# The 'auto' rule
# --------------------------------------------------------------------------------------
def estimates(costs: tuple[float, ...], n: int, out_hw: tuple[int, int], k_shape: tuple[int, int],
              fft_shape: tuple[int, int], complex_: bool) -> tuple[float, float]:
    """(direct, fft) estimated nanoseconds under cost constants (d0, a, c, f0, b)."""
    d0, a, c, f0, b = costs
    outputs = n * out_hw[0] * out_hw[1]
    P = fft_shape[0] * fft_shape[1]
    t_direct = d0 + (a * k_shape[0] * k_shape[1] + c) * outputs * (4 if complex_ else 1)
    t_fft = f0 + b * (2 * n + 0.5) * P * math.log2(max(P, 2)) * (2 if complex_ else 1)
    return t_direct, t_fft


def _real_name(dtype: np.dtype) -> str:
    return "float32" if np.dtype(dtype) in (np.float32, np.complex64) else "float64"


def _valid_costs(e: Any) -> tuple[float, ...] | None:
    ns = e.get("ns") if isinstance(e, dict) else None
    try:
        vals = tuple(float(ns[n]) for n in _COST_NAMES)  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None
    return vals if all(math.isfinite(v) and v >= 0 for v in vals) and vals[1] > 0 and vals[4] > 0 else None


def cost_constants(dtype: Any) -> tuple[tuple[float, ...], str]:
    """(d0, a, c, f0, b) in ns for the real type of ``dtype``, and where they come from
    ("measured"/"file" plan, or "static"): the autotune plan ``filter-cost <dtype> <isa>``
    (measured once by :func:`calibrate` in "measure" mode), else :data:`STATIC_COSTS`."""
    from . import _autotune as _at

    name = _real_name(dtype)
    static = STATIC_COSTS[name]
    if _at.get_autotune() == "off":
        return static, "static"
    key = f"filter-cost {name} {_at._isa_in_use()}"
    e = _at.cached_plan(key, lambda: calibrate(name))
    costs = _valid_costs(e)
    return (costs, "plan") if costs is not None else (static, "static")


def _best_ns(run: Callable[[], object], reps: int) -> float:
    import time

    run()  # warm-up (plans, caches)
    best = math.inf
    for _ in range(reps):
        t0 = time.thread_time_ns()
        run()
        best = min(best, time.thread_time_ns() - t0)
    return float(best)


def calibrate(dtype: Any = "float32", reps: int = 3) -> dict:
    """Measure the cost constants of both paths (1 thread, this thread's CPU time, best of
    ``reps``) and return the autotune plan entry (``ns``: d0, a, c, f0, b)."""
    from .. import _parallel
    from .filter import correlate_planes

    dt: np.dtype = np.dtype(_real_name(dtype))
    rng = np.random.default_rng(0)
    tiny = rng.standard_normal((1, 8, 8)).astype(dt)
    plane = rng.standard_normal((1, 256, 256)).astype(dt)
    big = rng.standard_normal((1, 1024, 1024)).astype(dt)
    k3 = rng.standard_normal((3, 3)).astype(dt)
    k15 = rng.standard_normal((15, 15)).astype(dt)
    zero = np.zeros((), dt)

    def run(x: np.ndarray, k: np.ndarray, method: str) -> Callable[[], object]:
        return lambda: correlate_planes(x, k, "same", "symm", zero, False, dt, method)

    saved = _parallel._explicit_num_threads
    _parallel._explicit_num_threads = 1
    try:
        t = {"direct_tiny": _best_ns(run(tiny, k3, "direct"), reps),
             "direct_3x3": _best_ns(run(plane, k3, "direct"), reps),
             "direct_15x15": _best_ns(run(plane, k15, "direct"), reps),
             "fft_tiny": _best_ns(run(tiny, k3, "fft"), reps),
             "fft_15x15": _best_ns(run(big, k15, "fft"), reps)}
    finally:
        _parallel._explicit_num_threads = saved
    outputs = 256 * 256
    d0 = t["direct_tiny"]
    a = max((t["direct_15x15"] - t["direct_3x3"]) / (outputs * (225 - 9)), 1e-6)
    c = max((t["direct_3x3"] - d0) / outputs - 9 * a, 0.0)
    f0 = t["fft_tiny"]
    rmap = np.arange(-7, 1024 + 7)  # 'same' symm: no fill entries
    _, _, _, (L1, L2) = _plan(big.shape, (15, 15), rmap, rmap, 0, (1024, 1024), False)
    P = L1 * L2
    b = max((t["fft_15x15"] - f0) / (2.5 * P * math.log2(P)), 1e-6)
    return {"op": "filter-cost", "algorithm": "cost-model", "table": "static",
            "times_us": {k_: round(v / 1e3, 2) for k_, v in t.items()},
            "ns": {"d0": round(d0, 1), "a": round(a, 5), "c": round(c, 4), "f0": round(f0, 1), "b": round(b, 5)},
            "timing": "1 thread, CPU time"}


def _finite(*arrays: Any) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def use_fft(method: str, x: np.ndarray, k: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any,
            out_dtype: np.dtype, out_hw: tuple[int, int]) -> bool:
    """Whether :func:`correlate_fft` computes this correlation (``method`` canonical)."""
    if method != "auto":
        return method == "fft"
    if not fft_dtype(out_dtype):
        return False
    complex_ = out_dtype.kind == "c"
    _, _, _, shape = _plan(x.shape, k.shape, rmap, cmap, fill, out_hw, complex_)
    args = (x.shape[0], out_hw, k.shape, shape, complex_)
    t_d, t_f = estimates(STATIC_COSTS[_real_name(out_dtype)], *args)
    if t_f * CLEAR_FACTOR < t_d or t_d * CLEAR_FACTOR < t_f:
        pick = t_f < t_d  # clear either way: no calibration needed
    else:
        t_d, t_f = estimates(cost_constants(out_dtype)[0], *args)
        pick = t_f < t_d
    if not pick:
        return False
    uses_fill = bool((rmap < 0).any() or (cmap < 0).any())
    return _finite(x, k, fill) if uses_fill else _finite(x, k)
