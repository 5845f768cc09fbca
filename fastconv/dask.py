"""Out-of-core 2-D filtering: fastconv's filters mapped over ``dask.array`` chunks.

An image ``(H, W)`` or a stack ``(..., H, W)`` held as a :class:`dask.array.Array` (larger
than memory, or spread over a cluster) is filtered chunk by chunk with
:func:`dask.array.map_overlap`; the result is a lazy dask array, identical to the in-memory
function applied to the whole array (float32/float64 bit for bit: each output is summed
over the same taps in the same order wherever its chunk edges lie).

How a chunk is filtered (:func:`correlate2d`, :func:`convolve2d`):

1. The global array is extended once by the boundary rule along its last two axes, by the
   amounts the mode's window reads outside it (``before``/``after`` of
   ``fastconv.functional.filter.output_window``: for 'same', kH - 1 - kH // 2 rows before and
   kH // 2 after for correlate2d, kH // 2 and (kH - 1) // 2 for convolve2d; kH - 1 both sides
   for 'full'; none for 'valid'). The extension reads the same source indices as the
   in-memory function (repeated mirroring for 'symm' when the kernel is larger than the
   image; the fill value cast to the output dtype), so it is exact where Dask's own
   boundaries are not: Dask's ``'reflect'`` is SciPy's 'symm' (edge sample repeated) and
   ``'periodic'`` is 'wrap', but both need the depth to fit in the axis and do not repeat,
   and a constant boundary is cast to the *input* dtype (``fillvalue=0.5`` on integers
   would become 0). Asymmetric depths are also supported by Dask only with
   ``boundary='none'``; so the mapping is done with ``boundary='none'``.
2. ``map_overlap`` with the asymmetric depth ``(a, b)`` per axis (a + b = k - 1; for 'same'
   exactly the window's (before, after), so the output chunks are the input chunks) hands
   every block the rows/columns its outputs read, and the block runs
   ``fastconv.filter2d(block, kernel, mode='valid')`` -- one parallel call for all the planes
   of the block. Leading axes have depth 0 (chunked independently).
3. Chunks smaller than the depth (Dask requires depth <= chunk size) are merged with their
   neighbours first (an automatic rechunk of the affected axis only).

Edge filters (:func:`sobel`, :func:`prewitt`, ...) use a generic wrapper, :func:`_overlap_filter`:
a same-shape filter ``func(image, ..., mode=, cval=)`` reading at most ``depth`` pixels away is
mapped with symmetric ``depth`` and trimmed. Its own boundary handling stays exact: for the
local modes ('reflect', 'mirror', 'nearest', 'constant') the blocks at the array's edges are
mapped with Dask's ``boundary='none'``, so ``func`` extends the true image edge itself (chunks
are at least 2 * depth + 1 long); for 'wrap' the opposite edge is brought in by Dask's
``'periodic'`` (or the axis is one chunk and ``func`` wraps it).

Edge filters from fastconv.filters on 32/64-bit integer images are equal to the in-memory
ones within float64 rounding, not bit for bit: fastconv.filters chooses its exact-integer
path from the largest value it sees, which a chunk sees locally. All other dtypes and
filters are bit for bit.

Threads: Dask's threaded (and distributed) schedulers run one block per core at once, so a
block computed in a scheduler's pool thread runs fastconv's kernel on one thread
(:func:`fastconv.num_threads`, thread-local), and a block computed in the calling thread
(the synchronous scheduler) uses ``fastconv.get_num_threads()``. Without this the cores are
oversubscribed (C Dask threads x C OpenMP threads): on 2 busy cores a small block took
5.8 ms with 2 OpenMP threads against 0.19 ms with 1.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

try:
    import dask.array as da
except ImportError as e:  # pragma: no cover - the optional extra is not installed
    raise ImportError("fastconv.dask needs Dask's array module: pip install 'fastconv[dask]' "
                      "(or 'dask[array]')") from e

from ._parallel import num_threads
from ._validation import check_choice
from .functional._fft import check_method
from .functional.filter import (
    BOUNDARIES,
    MODES,
    _fold,
    fill_value,
    filter2d,
    output_window,
)

__all__ = [
    "convolve2d",
    "correlate2d",
    "filter_function",
    "ndimage_prewitt",
    "ndimage_sobel",
    "prewitt",
    "prewitt_h",
    "prewitt_v",
    "roberts",
    "roberts_neg_diag",
    "roberts_pos_diag",
    "scharr",
    "scharr_h",
    "scharr_v",
    "sobel",
    "sobel_h",
    "sobel_v",
]

_FAST_KINDS = "iufc"


def _check_dask(darr: Any, name: str = "darr") -> Any:
    if not isinstance(darr, da.Array):
        raise TypeError(f"{name} must be a dask.array.Array (wrap a NumPy array with "
                        f"dask.array.from_array, or use fastconv.signal / fastconv.filter2d in memory), "
                        f"got {type(darr).__name__}")
    if darr.ndim < 2:
        raise ValueError(f"{name} must have shape (..., H, W) with at least 2 dimensions, got shape {darr.shape}")
    if any(np.isnan(s) for s in darr.shape[-2:]):
        raise ValueError(f"{name} must have known chunk sizes along its last two axes "
                         "(call .compute_chunk_sizes() first)")
    return darr


def _merge_small(chunks: tuple[int, ...], minimum: int) -> tuple[int, ...]:
    """Chunks along one axis with every chunk >= ``minimum`` (small ones merged forward; a
    short remainder joins the last chunk); a single chunk when the axis is shorter."""
    if not chunks or min(chunks) >= minimum:
        return tuple(chunks)
    out: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= minimum:
            out.append(acc)
            acc = 0
    if acc:
        if out:
            out[-1] += acc
        else:
            out.append(acc)
    return tuple(out)


def _rechunk_axes(x: Any, minimum: dict[int, int]) -> Any:
    """``x`` rechunked (only where needed) so that every chunk of each axis in ``minimum``
    is at least that long."""
    new = {ax: _merge_small(x.chunks[ax], m) for ax, m in minimum.items()}
    if all(new[ax] == x.chunks[ax] for ax in new):
        return x
    return x.rechunk({ax: c for ax, c in new.items()})


def _extend_axis(x: Any, axis: int, before: int, after: int, rule: str, fill: np.ndarray) -> Any:
    """``x`` extended along ``axis`` by ``before``/``after`` samples: the fill value (cast to
    x's dtype by the caller) or the source indices of fastconv's own extension ('wrap',
    'symm' repeated when wider than the axis)."""
    if not before and not after:
        return x
    n = x.shape[axis]

    def strip(idx: np.ndarray) -> Any:
        if rule == "fill":
            shape = list(x.shape)
            shape[axis] = idx.size
            chunks = list(x.chunks)
            chunks[axis] = (idx.size,)
            return da.full(tuple(shape), fill, dtype=x.dtype, chunks=tuple(chunks))
        key: tuple[Any, ...] = (slice(None),) * axis + (_fold(idx, n, rule).astype(np.intp),)
        return x[key]

    parts = []
    if before:
        parts.append(strip(np.arange(-before, 0)))
    parts.append(x)
    if after:
        parts.append(strip(np.arange(n, n + after)))
    y = da.concatenate(parts, axis=axis)
    # the strips join the first/last chunk (no thin edge chunks)
    c = list(x.chunks[axis])
    if len(c) == 0:
        return y
    c[0] += before
    c[-1] += after
    return y.rechunk({axis: tuple(c)})


def _map_valid(X: Any, split: tuple[tuple[int, int], tuple[int, int]], block: Callable[[np.ndarray], np.ndarray],
               dtype: np.dtype) -> Any:
    """out[..., i, j] = 'valid' result of ``block`` over X[..., i:i+kH, j:j+kW] (kH = a+b+1 per
    axis from ``split``), chunk by chunk with the asymmetric overlap (a, b) on the last two axes."""
    nd = X.ndim
    axes = (nd - 2, nd - 1)
    X = _rechunk_axes(X, {ax: max(a, b) + 1 for ax, (a, b) in zip(axes, split)})
    out_chunks = list(X.chunks)
    for ax, (a, b) in zip(axes, split):
        c = list(X.chunks[ax])
        if len(c) == 1:
            c[0] -= a + b
        else:
            c[0] -= a
            c[-1] -= b
        out_chunks[ax] = tuple(c)
    depth: dict[int, int | tuple[int, int]] = {ax: 0 for ax in range(nd)}
    for ax, (a, b) in zip(axes, split):
        depth[ax] = (a, b)
    if all(a == b == 0 for a, b in split):
        return X.map_blocks(block, dtype=dtype, meta=np.empty((0,) * nd, dtype))
    return da.map_overlap(block, X, depth=depth, boundary="none", trim=False, allow_rechunk=False,
                          chunks=tuple(out_chunks), dtype=dtype, meta=np.empty((0,) * nd, dtype))


def _filter(darr: Any, kernel: Any, mode: str, boundary: str, fillvalue: Any, convolve: bool,
            method: Any) -> Any:
    x = _check_dask(darr)
    k = np.asarray(kernel)
    if k.ndim != 2:
        raise ValueError(f"kernel must be 2-D with shape (kH, kW), got shape {k.shape}")
    mode = check_choice(mode, "mode", MODES)
    rule = check_choice(boundary, "boundary", BOUNDARIES)
    dtype = np.result_type(x.dtype, k)
    if dtype.kind not in _FAST_KINDS or dtype.itemsize > 16 or dtype in (np.float16, np.longdouble,
                                                                         np.clongdouble):
        raise TypeError(f"darr and kernel must be integer, float32/64 or complex64/128 arrays; "
                        f"got {x.dtype} and {k.dtype}")
    H, W = x.shape[-2:]
    kh, kw = k.shape
    if mode == "valid" and (kh > H or kw > W):
        raise ValueError(f"mode='valid' needs the kernel {k.shape} to fit in the planes {(H, W)}")
    fill = fill_value(fillvalue, dtype)
    method = check_method(method, dtype)
    oh, top, bottom = output_window(mode, H, kh, convolve)
    ow, left, right = output_window(mode, W, kw, convolve)
    if x.size == 0 or oh == 0 or ow == 0 or kh == 0 or kw == 0:
        # nothing to chunk: the in-memory function on a (lazy) empty or tap-less array
        def whole(b: np.ndarray) -> np.ndarray:
            return filter2d(b, k, mode, boundary, fillvalue, convolve=convolve)
        if x.size == 0:
            y = whole(np.empty(x.shape, x.dtype))
            return da.from_array(y, chunks=y.shape or ())
        x = x.rechunk({x.ndim - 2: -1, x.ndim - 1: -1})
        return x.map_blocks(whole, dtype=dtype, chunks=x.chunks[:-2] + ((oh,), (ow,)),
                            meta=np.empty((0,) * x.ndim, dtype))
    if rule != "fill" and ((top or bottom) and H == 0 or (left or right) and W == 0):
        raise ValueError(f"boundary {rule!r} cannot extend an empty axis (input shape {(H, W)})")
    # strips in the input dtype unless the fill value does not survive the round trip
    def in_input_dtype(v: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "c" and v.dtype.kind == "c":
            v = v.real
        with np.errstate(all="ignore"):
            return v.astype(x.dtype)

    if rule == "fill" and (top or bottom or left or right):
        back = in_input_dtype(fill).astype(dtype)
        if not np.array_equal(back, fill, equal_nan=dtype.kind in "fc"):
            x = x.astype(dtype)
    xfill = in_input_dtype(fill)

    def split(mode: str, k: int, before: int) -> tuple[int, int]:
        if mode == "same":  # before + after == k - 1: output chunks = input chunks
            return before, k - 1 - before
        return (k - 1) // 2, k - 1 - (k - 1) // 2

    splits = (split(mode, kh, top), split(mode, kw, left))
    # merge short chunks before extending, so that the output chunks are not short either
    x = _rechunk_axes(x, {x.ndim - 2: max(splits[0]) + 1, x.ndim - 1: max(splits[1]) + 1})
    X = _extend_axis(x, x.ndim - 2, top, bottom, rule, xfill)
    X = _extend_axis(X, X.ndim - 1, left, right, rule, xfill)

    def block(b: np.ndarray) -> np.ndarray:
        with _block_threads():
            return filter2d(b, k, "valid", convolve=convolve, method=method)

    return _map_valid(X, splits, block, dtype)


def correlate2d(darr: Any, kernel: Any, mode: str = "same", boundary: str = "fill",
                fillvalue: Any = 0, *, method: str = "direct") -> Any:
    """Cross-correlate every plane of a Dask array with a 2-D kernel, chunk by chunk.

    Lazy; ``.compute()`` gives exactly ``fastconv.filter2d(darr.compute(), kernel, mode,
    boundary, fillvalue)`` (per plane ``scipy.signal.correlate2d``, including its 'same' window
    for even kernels and the conjugated complex kernel), without materialising the input.

    Parameters
    ----------
    darr : dask.array.Array, shape (..., H, W)
        Integer, float32/float64 or complex64/complex128; any chunking (leading axes are
        filtered independently; chunks along H and W shorter than the kernel's reach are
        merged automatically).
    kernel : array_like, shape (kH, kW)
        In memory (a NumPy array; a Dask array is computed).
    mode : {"same", "valid", "full"}
        As SciPy's; 'valid' needs the kernel to fit in the planes (no operand swap).
    boundary : {"fill", "pad", "wrap", "circular", "symm", "symmetric"}
    fillvalue : scalar
        The value outside the planes for boundary "fill" (SciPy's conversion to the output
        dtype: NaN or out-of-range values for an integer output are a ValueError).
    method : {"direct", "auto", "fft"}, keyword-only
        Passed to every block's :func:`fastconv.filter2d`. 'direct' (the default) makes the
        result bit for bit the in-memory one; with 'fft' (or 'auto' choosing it) each block
        is transformed on its own, so results agree with the in-memory function within the
        FFT's normwise error bound, not bitwise.

    Returns
    -------
    out : dask.array.Array, shape (..., OH, OW), dtype ``np.result_type(darr, kernel)``
        OH = H ('same'), H - kH + 1 ('valid'), H + kH - 1 ('full'); for 'same' the chunks of
        ``darr`` (after any merging of short chunks).
    """
    return _filter(darr, kernel, mode, boundary, fillvalue, False, method)


def convolve2d(darr: Any, kernel: Any, mode: str = "same", boundary: str = "fill",
               fillvalue: Any = 0, *, method: str = "direct") -> Any:
    """Convolve every plane of a Dask array with a 2-D kernel, chunk by chunk.

    As :func:`correlate2d` with the kernel flipped and convolve2d's 'same' window
    (``(kH - 1) // 2`` before): ``.compute()`` equals
    ``fastconv.filter2d(darr.compute(), kernel, mode, boundary, fillvalue, convolve=True)``.

    Parameters
    ----------
    darr : dask.array.Array, shape (..., H, W)
    kernel : array_like, shape (kH, kW)
    mode : {"same", "valid", "full"}
    boundary : {"fill", "pad", "wrap", "circular", "symm", "symmetric"}
    fillvalue : scalar
    method : {"direct", "auto", "fft"}, keyword-only

    Returns
    -------
    out : dask.array.Array, shape (..., OH, OW), dtype ``np.result_type(darr, kernel)``
    """
    return _filter(darr, kernel, mode, boundary, fillvalue, True, method)


# --- same-shape filters (ndimage / scikit-image style) -------------------------------------

#: modes whose extension at an edge reads only samples near that edge (mapped with
#: boundary='none': the filter extends the true edge of the image itself).
_WRAP_MODES = ("wrap", "grid-wrap")


def _block_threads() -> num_threads:
    """The kernel threads of a block: 1 in a scheduler's pool thread (other blocks run on the
    other cores meanwhile), the caller's setting in the calling thread (synchronous)."""
    return num_threads(None if threading.current_thread() is threading.main_thread() else 1)


def _per_plane(func: Callable[..., np.ndarray], b: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
    with _block_threads():
        return _per_plane_here(func, b, args, kwargs)


def _per_plane_here(func: Callable[..., np.ndarray], b: np.ndarray, args: tuple, kwargs: dict) -> np.ndarray:
    if b.ndim == 2:
        return np.asarray(func(b, *args, **kwargs))
    planes = b.reshape((-1,) + b.shape[-2:])
    out = [np.asarray(func(p, *args, **kwargs)) for p in planes]
    if not out:
        return np.empty(b.shape, np.asarray(func(np.zeros(b.shape[-2:], b.dtype), *args, **kwargs)).dtype)
    return np.stack(out).reshape(b.shape[:-2] + out[0].shape)


def _apply_overlap(func: Callable[..., np.ndarray], depth: int, darr: Any, args: tuple,
                   kwargs: dict, mode: Any) -> Any:
    x = _check_dask(darr)
    nd = x.ndim
    axes = (nd - 2, nd - 1)
    probe = _per_plane(func, np.zeros((2 * depth + 1,) * 2, x.dtype), args, kwargs)  # also validates
    if probe.shape != (2 * depth + 1,) * 2:
        raise ValueError(f"{getattr(func, '__name__', func)!r} must return an array of its input's shape")
    dtype = probe.dtype

    def block(b: np.ndarray) -> np.ndarray:
        return _per_plane(func, b, args, kwargs)

    if depth == 0:
        return x.map_blocks(block, dtype=dtype, meta=np.empty((0,) * nd, dtype))
    x = _rechunk_axes(x, {ax: 2 * depth + 1 for ax in axes})
    # one mode, or one per image axis (scikit-image/fastconv.filters accept a sequence)
    modes = list(mode) if not isinstance(mode, str) and np.iterable(mode) else [mode] * 2
    if len(modes) != 2:  # func has refused it already (the probe); keep the default boundaries
        modes = [None, None]
    bnd: dict[int, str] = {ax: "none" for ax in range(nd)}
    dep = {ax: 0 for ax in range(nd)}
    for ax, m in zip(axes, modes):
        dep[ax] = depth
        if isinstance(m, str) and m in _WRAP_MODES and len(x.chunks[ax]) > 1:
            bnd[ax] = "periodic"
    return da.map_overlap(block, x, depth=dep, boundary=bnd, trim=True, allow_rechunk=False,
                          dtype=dtype, meta=np.empty((0,) * nd, dtype))


def _accepts(func: Callable[..., Any], name: str) -> bool:
    import inspect

    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _overlap_filter(func: Callable[..., np.ndarray], depth: int, mode: str | None = "reflect") -> Callable[..., Any]:
    """The Dask version of a same-shape 2-D filter, as a function ``(darr, *args, **kwargs) ->
    dask array`` (adding a filter is one line: ``sobel = _overlap_filter(filters.sobel, 1)``).

    ``func(image, *args, **kwargs)`` maps a 2-D array to one of the same shape whose every
    output reads input samples at most ``depth`` away along each axis (for a kernel of size
    k with ndimage's centring, ``depth = k // 2``). Stacks ``(..., H, W)`` are filtered plane
    by plane. The boundary (keyword ``mode``, default ``mode``; ``None``: ``func`` takes no
    mode and its fixed boundary must be local, e.g. skimage's roberts) is handled by ``func``
    itself at the image's edges (see the module docstring).
    """
    default = mode
    takes_mode = mode is not None and _accepts(func, "mode")

    def wrapped(darr: Any, *args: Any, **kwargs: Any) -> Any:
        if takes_mode:
            kwargs.setdefault("mode", default)
        if kwargs.get("mask") is not None:
            raise TypeError(f"mask is not supported by fastconv.dask.{wrapped.__name__} "
                            "(multiply the result by a chunked mask instead)")
        if isinstance(kwargs.get("output"), np.ndarray):
            raise TypeError(f"output must be a dtype for fastconv.dask.{wrapped.__name__}, not an array "
                            "(the result is a new dask array)")
        return _apply_overlap(func, depth, darr, args, kwargs, kwargs.get("mode", default))

    wrapped.__name__ = getattr(func, "__name__", "filter")
    wrapped.__qualname__ = wrapped.__name__
    wrapped.__doc__ = (f"Dask version of ``{getattr(func, '__module__', '')}.{wrapped.__name__}``, "
                       f"chunk by chunk (overlap depth {depth}); same arguments after ``darr`` "
                       "(a dask.array.Array, shape (..., H, W), filtered plane by plane); returns a "
                       "lazy dask array equal to the in-memory result.")
    return wrapped


def filter_function(func: Callable[..., np.ndarray], depth: int,
                    mode: str | None = "reflect") -> Callable[..., Any]:
    """Wrap any same-shape 2-D filter for Dask arrays (the mechanism behind :func:`sobel` etc.).

    Parameters
    ----------
    func : callable
        ``func(image, *args, mode=..., **kwargs) -> ndarray`` of the image's shape (H, W); every
        output reads input samples at most ``depth`` away along each axis, and ``mode`` is an
        ndimage/scikit-image boundary name ('reflect', 'mirror', 'nearest', 'constant',
        'wrap', ...), handled by ``func``.
    depth : int
        The filter's reach (its kernel's half-size, ``k // 2``).
    mode : str or None
        The default boundary mode of the returned function; None when ``func`` has no
        ``mode`` argument (its own boundary must then be local: not periodic).

    Returns
    -------
    wrapped : callable
        ``wrapped(darr, *args, mode=mode, **kwargs)`` for a dask.array.Array of shape
        (..., H, W): lazy, equal to ``func`` applied to each plane in memory.
    """
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be a non-negative int, got {depth!r}")
    if not callable(func):
        raise TypeError(f"func must be callable, got {type(func).__name__}")
    return _overlap_filter(func, int(depth), mode)


def _lazy(module: str, name: str, depth: int, mode: str | None = "reflect") -> Callable[..., Any]:
    """A Dask edge filter over ``fastconv.<module>.<name>``, resolved when first called."""
    cache: list[Callable[..., Any]] = []

    def wrapped(darr: Any, *args: Any, **kwargs: Any) -> Any:
        if not cache:
            import importlib

            mod = importlib.import_module(f"fastconv.{module}")
            cache.append(_overlap_filter(getattr(mod, name), depth, mode))
        return cache[0](darr, *args, **kwargs)

    wrapped.__name__ = wrapped.__qualname__ = name
    wrapped.__doc__ = (f"Dask version of ``fastconv.{module}.{name}`` (same arguments after ``darr``, a "
                       f"dask.array.Array of shape (..., H, W) filtered plane by plane; overlap depth {depth}); "
                       "returns a lazy dask array equal to the in-memory result.")
    return wrapped


# scikit-image's edge filters (fastconv.filters): 3x3 or 2x2 masks, reach 1
sobel = _lazy("filters", "sobel", 1)
prewitt = _lazy("filters", "prewitt", 1)
scharr = _lazy("filters", "scharr", 1)
sobel_h = _lazy("filters", "sobel_h", 1, None)
sobel_v = _lazy("filters", "sobel_v", 1, None)
prewitt_h = _lazy("filters", "prewitt_h", 1, None)
prewitt_v = _lazy("filters", "prewitt_v", 1, None)
scharr_h = _lazy("filters", "scharr_h", 1, None)
scharr_v = _lazy("filters", "scharr_v", 1, None)
roberts = _lazy("filters", "roberts", 1, None)
roberts_pos_diag = _lazy("filters", "roberts_pos_diag", 1, None)
roberts_neg_diag = _lazy("filters", "roberts_neg_diag", 1, None)
# scipy.ndimage's (fastconv.ndimage): the derivative along one axis of each plane
ndimage_sobel = _lazy("ndimage", "sobel", 1)
ndimage_prewitt = _lazy("ndimage", "prewitt", 1)
