"""FFT correlation of a stack of planes with one kernel, and the ``method="auto"`` rule.

:func:`correlate_fft` computes exactly what :func:`fastconv.functional.filter.correlate_planes`
computes (same arguments after its window arithmetic, same output), up to floating rounding:
each plane is extended by its boundary rule through the same row/column source maps the
direct kernel reads (:func:`~fastconv.functional.filter.source_map`; ``-1`` is the fill
value), so every rule the maps support works here unchanged, then correlated 'valid' with the
kernel as a linear convolution with the reversed kernel by ``scipy.fft.rfft2``/``irfft2``
(``fft2``/``ifft2`` for complex data) over ``scipy.fft.next_fast_len`` sizes, with
``workers = fastconv.get_num_threads()``. Large outputs go by overlap-save: the extension
is cut into overlapping M1 x M2 tiles (``M`` from :data:`TILE_SIDES`, each tile giving
``M - k + 1`` outputs per axis), transformed in batches of :data:`BATCH_BYTES` per thread over a
strided view (no tile copies), multiplied by the kernel's spectrum (computed once per call),
and only the kept rows transformed back; :func:`tile_plan` picks the sides by a cost model
(``P*log2(P)`` plus a per-line overhead per transform, :data:`BIG_FACTOR` for transforms
out of the L2 cache), the whole extension as one tile when that is cheaper. The extension
is written straight into the transform input as block copies of the maps' runs (the plane,
its reflections, wrapped periods, fill). Boundary ``fill`` with a zero fill value and one
tile skips the extension: the plane is transformed zero-padded with the smallest size whose
circular aliasing misses the output window. Planes go through in chunks of at most
:data:`CHUNK_BYTES` of extensions/transforms (at least one plane), so memory stays bounded
for any stack (one plane's extension plus a batch of tile spectra when tiled).

Accuracy. float32 data are transformed in single precision (scipy.fft keeps the type) and
float64 in double. The error of an FFT correlation is normwise, not per output: every output
carries an absolute error up to about ``eps * log2(P) * ||x_ext||_2 * ||k||_1`` (``P`` the
transform size, ``x_ext`` the extended plane), which is at most ``eps * log2(P) * sum|x| *
sum|k|``; tiled, ``P`` is a tile's size and ``x_ext`` the tile (never more than untiled). The direct path's error is local (``eps * kh*kw * sum of |x||k|`` over each output's
own window), so outputs much smaller than the plane's energy are relatively less accurate by
FFT. NaN and inf anywhere in a plane (or the kernel, or a used fill value) make every output
of that plane NaN by FFT, not only the outputs whose window holds them.

Choice (:func:`use_fft`). ``"direct"`` never, ``"fft"`` always (float32/64 and complex64/128
only: integer results must be exact and are refused by :func:`check_method`), ``"auto"`` by
a cost model of the two paths on this machine::

    direct: d0 + (a * kh*kw + c) * N*OH*OW            (x 4 for complex: four real passes)
    fft:    f0 + b * (N * tiles * (2 * u(M1, M2) + t) + u(M1, M2) / 2)   (x 2 for complex)

(``u(M1, M2) = P*log2(P) + LINE_OVERHEAD * (M1 + M2)``, x :data:`BIG_FACTOR` out of cache,
``P = M1 * M2`` the tile transform, ``t`` :data:`TILE_OVERHEAD`; each tile forward and back,
the kernel once: its kh rows, then the columns, about half a transform). Before any of
this, 'auto' goes direct from shapes alone for at most :data:`TAPS_FLOOR` taps or when the
static direct estimate is under ``f0 / CLEAR_FACTOR`` (no plan: a 32x32 call pays ~1 us). The constants are measured at run time (1 thread, CPU time: the kernels of
:func:`calibrate`) once per process and dtype and kept in the autotune plan file, so
``fastconv.plans()`` lists them as ``filter-cost <dtype> <isa> tiled`` entries. Under
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

import functools
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
#: 'auto' goes direct without estimating for kernels of at most this many taps (5x5):
#: measured, the direct path is then over 10x faster than the FFT at any size.
TAPS_FLOOR = 25
#: Static cost constants in nanoseconds (d0, a, c, f0, b) per real dtype: direct overhead
#: per call, per tap per output, per output; FFT overhead per call, per model unit of
#: :func:`_side_cost` (about a point*log2(point) of an in-cache transform). Measured by
#: :func:`calibrate` (1 thread, CPU time, the minimum of 5 runs of best-of-5) on AMD EPYC
#: Zen 5 (2 cores, AVX-512 build), with the register-blocked direct kernel and the
#: overlap-save FFT.
STATIC_COSTS: dict[str, tuple[float, float, float, float, float]] = {
    "float32": (4500.0, 0.0219, 0.053, 133000.0, 0.171),
    "float64": (4570.0, 0.0386, 0.216, 129000.0, 0.274),
}
_COST_NAMES = ("d0", "a", "c", "f0", "b")


def check_method(method: Any, dtype: np.dtype) -> str:
    """The canonical ``method`` (ValueError listing the choices); ValueError for "fft" on
    data that is not float32/float64/complex64/complex128 (integers must stay exact)."""
    from .._validation import check_choice

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


#: Transform sides tried for overlap-save tiles (even, factors 2, 3, 5 only: pocketfft's fastest).
TILE_SIDES = (64, 96, 128, 160, 192, 256, 320, 384, 480, 512, 640, 768, 1024)
#: A transform whose spectrum is larger than this many bytes runs out of the core's L2
#: cache: its points cost :data:`BIG_FACTOR` times more in the tile-size model.
CACHE_BYTES = 1 << 20
#: Measured (AMD EPYC Zen 5, 1 MB L2 per core, scipy 1.17's pocketfft, float32): one
#: 2048^2 'same' transform pair costs about 2x the in-cache tiles of the same model cost.
BIG_FACTOR = 2.0
#: Model cost of one length-M 1-D transform beyond M*log2(M) (call, buffer copies), in the
#: same units: fitted to 128..640 tiles on 2048^2 float32 with 15x15..63x63 kernels.
LINE_OVERHEAD = 800.0
#: Bytes of tile spectra transformed in one scipy.fft call per worker thread (a batch of
#: at least one tile per worker): about a core's L2. Measured (AMD EPYC Zen 5, 2048^2
#: float32, 31x31, 384^2 tiles of 593 kB spectra): one tile a call at 1 thread is 8 % faster
#: than three (a batch out of cache costs more than the saved calls), and at 2 threads two
#: tiles a call beat one by 5-12 % (pocketfft splits a call's lines between its workers).
BATCH_BYTES = 1 << 20
#: Model cost of one tile beyond its transforms (Python slicing, the copy out).
TILE_OVERHEAD = 3000.0


def _side_cost(m1: int, m2: int, spec_item: int, complex_: bool) -> float:
    """Model cost of one m1 x m2 transform (rows then columns): P*log2(P) + overhead per
    1-D transform, times :data:`BIG_FACTOR` out of cache. Units: ``b`` ns each (the FFT's
    cost constant); a real transform counts as the complex one of half its columns."""
    P = m1 * m2
    spec = P * spec_item // (1 if complex_ else 2)
    cost = P * math.log2(max(P, 2)) + LINE_OVERHEAD * (m1 + m2)
    return cost * (BIG_FACTOR if spec > CACHE_BYTES else 1.0)


@functools.lru_cache(maxsize=256)
def tile_plan(out_hw: tuple[int, int], k_shape: tuple[int, int], whole: tuple[int, int], complex_: bool,
              itemsize: int) -> tuple[tuple[int, int], tuple[int, int], tuple[float, float]]:
    """((T1, T2) output tile, (M1, M2) transform side, (per plane, kernel) model costs in
    :func:`_side_cost` units) of the cheapest overlap-save
    tiling of an ``out_hw`` 'valid' output of a ``k_shape`` kernel; ``whole`` is the
    untiled transform (one tile: ``T = out_hw``)."""
    from scipy.fft import next_fast_len

    spec_item = 2 * itemsize if not complex_ else itemsize
    kh, kw = k_shape
    oh, ow = out_hw

    def axis(out: int, k: int) -> list[tuple[int, int, int]]:
        # (tile, side, tiles); one tile along the axis: the whole extension (out + k - 1)
        whole_side = int(next_fast_len(out + k - 1, real=not complex_))
        c = [(out, whole_side, 1)]
        for m in TILE_SIDES:
            t = m - k + 1
            if t >= 1 and m < whole_side:
                c.append((t, m, -(-out // t)))
        return c

    best: tuple[float, tuple[int, int], tuple[int, int], float] | None = None
    for t1, m1, n1 in axis(oh, kh):
        for t2, m2, n2 in axis(ow, kw):
            sides = whole if n1 == n2 == 1 else (m1, m2)  # untiled: the transform sized by _plan
            one = _side_cost(sides[0], sides[1], spec_item, complex_)
            cost = n1 * n2 * (2 * one + TILE_OVERHEAD)
            if best is None or cost < best[0]:
                best = (cost, (t1, t2), sides, one)
    assert best is not None
    return best[1], best[2], (best[0], 0.5 * best[3])


#: At most this many runs per axis go through :func:`_extend_into`'s block copies (more:
#: tiny planes under a large kernel, gathered instead).
MAX_RUNS = 16


def _runs(m: np.ndarray) -> list[tuple[int, int, int, int]] | None:
    """The map ``m`` split into runs (start, stop, first source, step) with step -1, 0 or +1
    (a source of -1 with step 0: the fill value); None when there are more than
    :data:`MAX_RUNS`. Any such split is exact; this one cuts wherever the step changes."""
    n = m.size
    if n == 0:
        return []
    inside = m >= 0
    d = np.diff(m)
    fill_link = ~inside[:-1] & ~inside[1:]
    step = np.where(fill_link, 2, d)  # 2: a link inside a fill run
    link = fill_link | (inside[:-1] & inside[1:] & (np.abs(d) <= 1))
    cut = ~link
    cut[1:] |= step[1:] != step[:-1]
    starts = np.flatnonzero(cut) + 1
    if starts.size >= MAX_RUNS:
        return None
    b = [0, *starts.tolist(), n]
    ml = m.tolist()
    out = []
    for i, j in zip(b[:-1], b[1:]):
        a = ml[i]
        out.append((i, j, -1 if a < 0 else a, 0 if a < 0 or j - i == 1 else ml[i + 1] - a))
    return out


def _src_slice(first: int, step: int, length: int) -> slice:
    if step == 0:
        return slice(first, first + 1)
    if step > 0:
        return slice(first, first + length)
    stop = first - length
    return slice(first, stop if stop >= 0 else None, -1)


def _extend_into(dst: np.ndarray, x: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any) -> None:
    """dst (n, >=R, >=C) <- the planes x (n, H, W) extended through the maps (R, C long; -1:
    ``fill``), zeros beyond (outputs that are cut off read them: finite, so no NaN spreads).
    The maps' runs (the plane, its reflections, wrapped periods, repeated edges, fill) are
    copied as blocks straight from x: no intermediate copies."""
    R, C = rmap.size, cmap.size
    dst[:, R:] = 0
    dst[:, :R, C:] = 0
    rr, cr = _runs(rmap), _runs(cmap)
    if rr is None or cr is None or not (x.shape[1] and x.shape[2]):
        dst[:, :R, :C] = _extend(x, rmap, cmap, fill, dst.dtype)
        return
    for i, j, a, sa in rr:
        for p, q, b, sb in cr:
            if a < 0 or b < 0:
                dst[:, i:j, p:q] = fill
            else:
                dst[:, i:j, p:q] = x[:, _src_slice(a, sa, j - i), _src_slice(b, sb, q - p)]


def _correlate_tiled(x: np.ndarray, kr: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any,
                     y: np.ndarray, tile: tuple[int, int], side: tuple[int, int], workers: int) -> None:
    """Overlap-save: y (N, OH, OW) <- 'valid' convolution of the extended planes with kr
    (the reversed kernel), by transforms of overlapping M1 x M2 tiles of the extension
    (``side``), each giving T1 x T2 outputs (``tile``; T = M - k + 1), batched."""
    import scipy.fft as sfft
    from numpy.lib.stride_tricks import as_strided

    N, oh, ow = y.shape
    kh, kw = kr.shape
    (T1, T2), (M1, M2) = tile, side
    n1, n2 = -(-oh // T1), -(-ow // T2)
    complex_ = y.dtype.kind == "c"
    # the kernel's transform: its kh rows along the columns first, then the full columns
    if complex_:
        K = sfft.fft(sfft.fft(kr, n=M2, axis=1, workers=workers), n=M1, axis=0, workers=workers)
        fwd: Callable[..., np.ndarray] = sfft.fft2
        spec = M1 * M2 * y.dtype.itemsize
    else:
        K = sfft.fft(sfft.rfft(kr, n=M2, axis=1, workers=workers), n=M1, axis=0, workers=workers)
        fwd = sfft.rfft2
        spec = M1 * (M2 // 2 + 1) * 2 * y.dtype.itemsize
    E1, E2 = (n1 - 1) * T1 + M1, (n2 - 1) * T2 + M2  # the extension, cut to whole tiles
    per_plane = E1 * E2 * y.dtype.itemsize
    chunk = max(1, CHUNK_BYTES // max(per_plane, 1))
    batch = max(1, min(n2, max(1, workers) * max(1, BATCH_BYTES // spec)))
    r0s, c0s = kh - 1, kw - 1  # the valid part of a tile's circular result
    for p0 in range(0, N, chunk):
        xs = x[p0:p0 + chunk]
        buf = np.empty((xs.shape[0], E1, E2), y.dtype)
        _extend_into(buf, xs, rmap, cmap, fill)
        s0, s1, s2 = buf.strides
        tiles = as_strided(buf, (buf.shape[0], n1, n2, M1, M2), (s0, T1 * s1, T2 * s2, s1, s2), writeable=False)
        for p in range(buf.shape[0]):
            yp = y[p0 + p]
            for i in range(n1):
                r = i * T1
                h = min(T1, oh - r)
                for j0 in range(0, n2, batch):
                    X = fwd(tiles[p, i, j0:j0 + batch], axes=(-2, -1), workers=workers)
                    X *= K
                    # inverse: columns for every row, then only the rows kept
                    X = sfft.ifft(X, axis=-2, workers=workers, overwrite_x=True)[:, r0s:r0s + h]
                    if complex_:
                        f = sfft.ifft(X, axis=-1, workers=workers, overwrite_x=True)
                    else:
                        f = sfft.irfft(X, n=M2, axis=-1, workers=workers, overwrite_x=True)
                    for t in range(f.shape[0]):
                        c = (j0 + t) * T2
                        w = min(T2, ow - c)
                        yp[r:r + h, c:c + w] = f[t, :, c0s:c0s + w]
        del buf, tiles


def correlate_fft(x: np.ndarray, k: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any,
                  out_dtype: np.dtype, out_hw: tuple[int, int]) -> np.ndarray:
    """'valid' correlation of the planes x (N, H, W), extended through the source maps
    (``rmap``: extended row -> source row or -1 for ``fill``; ``cmap`` for columns), with k
    (kh, kw) (already reversed for convolution), by FFT; shape (N, OH, OW) of ``out_dtype``
    (float32/float64/complex64/complex128). Same contract as the direct kernel. Large
    outputs go through overlap-save tiles (:func:`tile_plan`), small ones through one
    transform of the whole extension."""
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
    tile, side, _ = tile_plan((oh, ow), k.shape, (L1, L2), complex_, np.dtype(out_dtype).itemsize)
    if tile != (oh, ow):
        _correlate_tiled(x, kr, rmap, cmap, fill, y, tile, side, workers)
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
    per_plane = 2 * L1 * spec_cols * spec_item + L1 * L2 * item
    chunk = max(1, CHUNK_BYTES // max(per_plane, 1))
    # the source (the extension, or the plane itself with zeros around) written straight
    # into the zero-padded transform input
    maps = (np.arange(s1), np.arange(s2)) if zero else (rmap, cmap)
    for i in range(0, N, chunk):
        xs = x[i:i + chunk]
        src = np.empty((xs.shape[0], L1, L2), out_dtype)
        _extend_into(src, xs, maps[0], maps[1], fill)
        X = fwd(src, axes=(-2, -1), workers=workers, overwrite_x=True)
        del src
        X *= K
        if complex_:
            full = sfft.ifft2(X, axes=(-2, -1), workers=workers, overwrite_x=True)
        else:
            full = sfft.irfft2(X, s=(L1, L2), axes=(-2, -1), workers=workers, overwrite_x=True)
        del X
        y[i:i + chunk] = full[:, n01:n01 + oh, n02:n02 + ow]
    return y


# --------------------------------------------------------------------------------------
# The 'auto' rule
# --------------------------------------------------------------------------------------
def estimates(costs: tuple[float, ...], n: int, out_hw: tuple[int, int], k_shape: tuple[int, int],
              fft_costs: tuple[float, float], complex_: bool, threads: int = 1) -> tuple[float, float]:
    """(direct, fft) estimated nanoseconds under cost constants (d0, a, c, f0, b) (measured on
    one thread); ``fft_costs``: (per plane, kernel) model units of :func:`tile_plan`.

    With ``threads`` > 1 the direct kernel's per-output part is divided by the thread count
    (its row blocks scale: 2048² 15×15 float32 21.4 -> 11.1 ms from 1 to 2 threads on AMD
    EPYC Zen 5), the FFT's is not (``scipy.fft``'s workers gained ~1.1x there: its tiles are
    bound by memory traffic), so 'auto' switches later on more threads (2048², 2 threads:
    from ~31 taps a side instead of ~21)."""
    d0, a, c, f0, b = costs
    outputs = n * out_hw[0] * out_hw[1]
    t_direct = d0 + (a * k_shape[0] * k_shape[1] + c) * outputs * (4 if complex_ else 1) / max(1, threads)
    t_fft = f0 + b * (n * fft_costs[0] + fft_costs[1]) * (2 if complex_ else 1)
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
    key = f"filter-cost {name} {_at._isa_in_use()} tiled"  # "tiled": the overlap-save model
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

    with _parallel.num_threads(1):  # thread-local: other Python threads keep their counts
        t = {"direct_tiny": _best_ns(run(tiny, k3, "direct"), reps),
             "direct_3x3": _best_ns(run(plane, k3, "direct"), reps),
             "direct_15x15": _best_ns(run(plane, k15, "direct"), reps),
             "fft_tiny": _best_ns(run(tiny, k3, "fft"), reps),
             "fft_15x15": _best_ns(run(big, k15, "fft"), reps)}
    outputs = 256 * 256
    d0 = t["direct_tiny"]
    a = max((t["direct_15x15"] - t["direct_3x3"]) / (outputs * (225 - 9)), 1e-6)
    c = max((t["direct_3x3"] - d0) / outputs - 9 * a, 0.0)
    f0 = t["fft_tiny"]
    rmap = np.arange(-7, 1024 + 7)  # 'same' symm: no fill entries
    _, _, _, whole = _plan(big.shape, (15, 15), rmap, rmap, 0, (1024, 1024), False)
    per_plane, kernel = tile_plan((1024, 1024), (15, 15), whole, False, dt.itemsize)[2]
    b = max((t["fft_15x15"] - f0) / (per_plane + kernel), 1e-6)
    return {"op": "filter-cost", "algorithm": "cost-model", "table": "static",
            "times_us": {k_: round(v / 1e3, 2) for k_, v in t.items()},
            "ns": {"d0": round(d0, 1), "a": round(a, 5), "c": round(c, 4), "f0": round(f0, 1), "b": round(b, 5)},
            "timing": "1 thread, CPU time"}


def _finite(*arrays: Any) -> bool:
    return all(bool(np.isfinite(a).all()) for a in arrays)


def use_fft(method: str, x: np.ndarray, k: np.ndarray, rmap: np.ndarray, cmap: np.ndarray, fill: Any,
            out_dtype: np.dtype, out_hw: tuple[int, int]) -> bool:
    """Whether :func:`correlate_fft` computes this correlation (``method`` canonical).

    'auto' first decides "direct" cheaply, from shapes only (no plan, no pass over the maps
    or the data): for at most :data:`TAPS_FLOOR` taps, or when the static direct estimate
    is below the FFT's fixed cost ``f0`` / :data:`CLEAR_FACTOR` (both also decisions of the
    full rule)."""
    if method != "auto":
        return method == "fft"
    kh, kw = k.shape
    if kh * kw <= TAPS_FLOOR or not fft_dtype(out_dtype):
        return False
    complex_ = out_dtype.kind == "c"
    static = STATIC_COSTS[_real_name(out_dtype)]
    d0, a, c, f0 = static[:4]
    t_d = d0 + (a * kh * kw + c) * x.shape[0] * out_hw[0] * out_hw[1] * (4 if complex_ else 1)
    if t_d * CLEAR_FACTOR < f0:  # the FFT's fixed cost alone is clearly more
        return False
    _, _, _, whole = _plan(x.shape, k.shape, rmap, cmap, fill, out_hw, complex_)
    fft_costs = tile_plan(tuple(out_hw), (kh, kw), whole, complex_, np.dtype(out_dtype).itemsize)[2]
    args = (x.shape[0], out_hw, k.shape, fft_costs, complex_, get_num_threads())
    t_d, t_f = estimates(static, *args)
    if t_f * CLEAR_FACTOR < t_d or t_d * CLEAR_FACTOR < t_f:
        pick = t_f < t_d  # clear either way: no calibration needed
    else:
        t_d, t_f = estimates(cost_constants(out_dtype)[0], *args)
        pick = t_f < t_d
    if not pick:
        return False
    uses_fill = bool((rmap < 0).any() or (cmap < 0).any())
    return _finite(x, k, fill) if uses_fill else _finite(x, k)
