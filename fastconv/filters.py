"""scikit-image's edge filters (``skimage.filters`` 0.26 names, arguments and results):
sobel, prewitt, scharr (+ ``_h``, ``_v``), roberts, roberts_pos_diag, roberts_neg_diag.

The image is converted as ``img_as_float`` does (float16 -> float32, float32/float64 kept,
unsigned integers / max, signed integers / max clipped at -1, bool -> 0/1; other types are
refused with ValueError). The derivative [1, 0, -1] (convolution, i.e. correlation with
[-1, 0, 1]) runs along the edge axis and the smoothing ([1, 2, 1] / 4, [1, 1, 1] / 3,
[3, 10, 3] / 16) along every other axis, as 1-D passes on fastconv's kernel (any number of
dimensions); the magnitude is ``sqrt(sum of squares / ndim)``, fused in place. 2-D images
(the magnitude or one axis) take one fused pass instead
(:func:`fastconv.functional.filter.gradient_planes`: both 3x3 gradients and the magnitude per
pixel, uint8/uint16 read directly; the same sums as the passes). Zero taps are
skipped as ``scipy.ndimage.convolve`` skips them (a NaN does not spread over the derivative's
zero tap), and 'constant' borders follow the n-D convolution (the second pass is filled with
``cval`` times the first pass's weight sum). With ``mask`` the result is zeroed outside the
mask eroded by one pixel (3x3..., border off), as scikit-image does.

float32 images run in float32 (results match scikit-image's float64-accumulated ones within
float32 rounding); integer and bool images with small values run exactly on their integer
values in float32 and are scaled once at the end in float64. Differences from scikit-image:
a negative ``axis`` means the axis it names (scikit-image 0.26 also smooths along that axis
then, giving a quarter of the derivative); ``mode`` may be one mode per axis (scikit-image's
convolution refuses a sequence).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._compat import normalize_axis_index
from ._validation import check_choice
from .functional.filter import gradient_planes
from .functional.ndfilter import filter_planes, separable
from .ndimage import MODES

__all__ = ["prewitt", "prewitt_h", "prewitt_v", "roberts", "roberts_neg_diag", "roberts_pos_diag", "scharr",
           "scharr_h", "scharr_v", "sobel", "sobel_h", "sobel_v"]

_EDGE = np.array([-1.0, 0.0, 1.0])  # correlation form of scikit-image's convolution [1, 0, -1]
#: filter -> (integer smoothing weights, their normalisation)
SMOOTHING = {"sobel": (np.array([1.0, 2.0, 1.0]), 1 / 4), "prewitt": (np.array([1.0, 1.0, 1.0]), 1 / 3),
             "scharr": (np.array([3.0, 10.0, 3.0]), 1 / 16)}
_EXACT_F32 = 2.0 ** 24


def _image(image: Any) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise ValueError(f"image must be a real or integer array, got dtype {img.dtype}")
    return img


def _as_float(img: np.ndarray) -> tuple[np.ndarray, float]:
    """(values to filter, scale to apply at the end): img_as_float's conversion, deferred for
    integers (their raw values, the most negative signed value clipped to -max)."""
    if img.dtype.kind == "f":
        return img.astype(np.float32 if img.dtype.itemsize <= 4 else np.float64, copy=False), 1.0
    if img.dtype.kind == "b":
        return img, 1.0
    info = np.iinfo(img.dtype)
    if info.min < 0:
        img = np.maximum(img, -info.max)
    return img, 1.0 / info.max


def _largest(values: np.ndarray) -> float:
    """A bound on |values| of an integer or bool array: its dtype's, else (wide types) its data's."""
    if values.dtype.kind == "b":
        return 1.0
    info = np.iinfo(values.dtype)
    if info.bits <= 16 or not values.size:
        return float(max(-int(info.min), int(info.max)))
    return float(max(abs(int(values.min())), abs(int(values.max()))))


def _rules(mode: Any, ndim: int) -> list[str]:
    modes = list(mode) if not isinstance(mode, str) and np.iterable(mode) else [mode] * ndim
    if len(modes) != ndim:
        raise ValueError(f"mode must be one mode or one per axis ({ndim}), got {mode!r}")
    rules = []
    for m in modes:
        rules.append(check_choice(m, "mode", MODES))
    return rules


def _axes(axis: Any, ndim: int) -> tuple[list[int], bool]:
    if axis is None:
        return list(range(ndim)), ndim > 1
    if np.isscalar(axis):
        return [normalize_axis_index(axis, ndim)], False
    axes = [normalize_axis_index(a, ndim) for a in axis]
    return axes, len(axes) > 1


def _mask(result: np.ndarray, mask: Any) -> np.ndarray:
    """Zero the result outside ``mask`` eroded by one pixel (full neighbourhood, border off)."""
    if mask is None:
        return result
    m = np.asarray(mask)
    if m.shape != result.shape:
        raise ValueError(f"mask must have the image's shape {result.shape}, got {m.shape}")
    m = m.astype(bool)
    pad = np.pad(m, 1, constant_values=False)
    eroded = np.ones_like(m)
    for offs in np.ndindex(*(3,) * m.ndim):
        eroded &= pad[tuple(slice(o, o + s) for o, s in zip(offs, m.shape))]
    result *= eroded
    return result


def _real_cval(cval: Any) -> float:
    """``cval`` as a float; TypeError naming it otherwise (complex, strings, arrays)."""
    if np.iscomplexobj(cval) or not np.ndim(cval) == 0:
        raise TypeError(f"cval must be a real number, got {cval!r}")
    try:
        return float(cval)
    except (TypeError, ValueError):
        raise TypeError(f"cval must be a real number, got {cval!r}") from None


def _edge(name: str, image: Any, mask: Any, axis: Any, mode: Any, cval: Any) -> np.ndarray:
    img = _image(image)
    ndim = img.ndim
    axes, magnitude = _axes(axis, ndim)
    rules = _rules(mode, ndim)
    cval = _real_cval(cval)
    smooth, norm = SMOOTHING[name]
    values, scale = _as_float(img)
    out_dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    if values.dtype.kind != "f" and (cval and "fill" in rules
                                     or _largest(values) * 2 * smooth.sum() ** (ndim - 1) >= _EXACT_F32):
        values, scale = values * scale, 1.0  # outside the exact float32 range: img_as_float
    dt = np.dtype(np.float32) if values.dtype.kind != "f" else values.dtype
    fill = cval / scale  # the image's border value in the units filtered
    if (ndim == 2 and values.size and np.isfinite(fill)  # one fused pass (both gradients)
            and (magnitude and sorted(axes) == [0, 1] or len(axes) == 1)):
        output = "magnitude" if magnitude else f"axis{axes[0]}"
        factor = scale * norm / (np.sqrt(2) if magnitude else 1.0)
        return _mask(gradient_planes(_fused_input(values), name, (rules[0], rules[1]), fill, factor,
                                     out_dtype, output), mask)
    parts = []
    for edge_axis in axes:
        passes = [(edge_axis, _EDGE, rules[edge_axis], fill)]
        passes += [(ax, smooth, rules[ax], 0.0) for ax in range(ndim) if ax != edge_axis]  # 0 = fill * sum(_EDGE)
        parts.append(separable(values, passes, [dt] * len(passes), skip_zero_taps=True))
    factor = scale * norm ** (ndim - 1)
    if not magnitude:
        out = parts[0].astype(out_dtype, copy=False)
        out *= out_dtype.type(factor)
        return _mask(out, mask)
    return _mask(_magnitude(parts, factor / np.sqrt(ndim), out_dtype), mask)


def _fused_input(values: np.ndarray) -> np.ndarray:
    """The values in a type of the fused gradient kernel: float32/float64 and uint8/uint16 as
    they are, bool as uint8, other integers (here exact in float32) as float32."""
    if values.dtype.kind == "f" or values.dtype in (np.uint8, np.uint16):
        return values
    if values.dtype.kind == "b":
        return values.view(np.uint8)
    return values.astype(np.float32)


def _magnitude(parts: list[np.ndarray], factor: float, dtype: np.dtype) -> np.ndarray:
    """``factor * sqrt(sum of squares)`` in ``dtype``, in place where the parts are ``dtype``."""
    first = parts[0]
    out = first if first.dtype == dtype else np.empty(first.shape, dtype)
    np.multiply(first, first, out=out, dtype=dtype)
    for g in parts[1:]:
        if g.dtype == dtype:
            g *= g
            out += g
        else:
            out += np.square(g, dtype=dtype)
    np.sqrt(out, out=out)
    out *= dtype.type(factor)
    return out


def sobel(image: Any, mask: Any = None, *, axis: Any = None, mode: Any = "reflect",
          cval: float = 0.0) -> np.ndarray:
    """Sobel edge magnitude (or derivative along ``axis``): ``skimage.filters.sobel``.

    Parameters
    ----------
    image : array_like, any number of dimensions
    mask : array_like of bool, the image's shape, optional
        The result is zeroed outside the mask eroded by one pixel.
    axis : int or sequence of int, optional
        One axis: the signed derivative along it (smoothed [1, 2, 1] / 4 along the others).
        None or several axes: ``sqrt(sum over those axes of derivative**2 / image.ndim)``.
    mode : str or sequence of str
        ndimage's modes ('reflect', 'constant', 'nearest', 'mirror', 'wrap', grid-*).
    cval : float
        The border value for 'constant' (in img_as_float units).

    Returns
    -------
    out : ndarray, the image's shape, float32 (float16/float32 image) or float64
    """
    return _edge("sobel", image, mask, axis, mode, cval)


def prewitt(image: Any, mask: Any = None, *, axis: Any = None, mode: Any = "reflect",
            cval: float = 0.0) -> np.ndarray:
    """Prewitt edge magnitude: ``skimage.filters.prewitt`` (smoothing [1, 1, 1] / 3);
    parameters and returns as :func:`sobel`."""
    return _edge("prewitt", image, mask, axis, mode, cval)


def scharr(image: Any, mask: Any = None, *, axis: Any = None, mode: Any = "reflect",
           cval: float = 0.0) -> np.ndarray:
    """Scharr edge magnitude: ``skimage.filters.scharr`` (smoothing [3, 10, 3] / 16);
    parameters and returns as :func:`sobel`."""
    return _edge("scharr", image, mask, axis, mode, cval)


def _check_2d(image: Any) -> np.ndarray:
    img = np.asarray(image)
    if img.size == 0:
        raise ValueError("The parameter `image` cannot be an empty array")
    if img.ndim != 2:
        raise ValueError("The parameter `image` must be a 2-dimensional array")
    return img


def sobel_h(image: Any, mask: Any = None) -> np.ndarray:
    """Horizontal edges (derivative along axis 0): ``skimage.filters.sobel_h``; 2-D image."""
    return sobel(_check_2d(image), mask, axis=0)


def sobel_v(image: Any, mask: Any = None) -> np.ndarray:
    """Vertical edges (derivative along axis 1): ``skimage.filters.sobel_v``; 2-D image."""
    return sobel(_check_2d(image), mask, axis=1)


def prewitt_h(image: Any, mask: Any = None) -> np.ndarray:
    """``skimage.filters.prewitt_h``: derivative along axis 0; 2-D image."""
    return prewitt(_check_2d(image), mask, axis=0)


def prewitt_v(image: Any, mask: Any = None) -> np.ndarray:
    """``skimage.filters.prewitt_v``: derivative along axis 1; 2-D image."""
    return prewitt(_check_2d(image), mask, axis=1)


def scharr_h(image: Any, mask: Any = None) -> np.ndarray:
    """``skimage.filters.scharr_h``: derivative along axis 0; 2-D image."""
    return scharr(_check_2d(image), mask, axis=0)


def scharr_v(image: Any, mask: Any = None) -> np.ndarray:
    """``skimage.filters.scharr_v``: derivative along axis 1; 2-D image."""
    return scharr(_check_2d(image), mask, axis=1)


#: Roberts' kernels in correlation form (scikit-image convolves [[1, 0], [0, -1]] and
#: [[0, 1], [-1, 0]]: out[i, j] = x[i+1, j+1] - x[i, j] and x[i+1, j] - x[i, j+1], 'reflect').
_ROBERTS = {"pos": np.array([[-1.0, 0.0], [0.0, 1.0]]), "neg": np.array([[0.0, -1.0], [1.0, 0.0]])}


def _roberts(image: Any, which: tuple[str, ...]) -> list[np.ndarray]:
    img = _image(_check_2d(image))
    values, scale = _as_float(img)
    dt = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    if values.dtype.kind != "f":
        values = values.astype(np.float64) * scale  # small images of ints: plain float64
    x = values[None]
    parts = []
    for name in which:
        k = _ROBERTS[name]
        y = filter_planes(x, k, (0, 0), ("symm", "symm"), 0.0, dt)
        if not np.isfinite(y.sum()):  # a NaN or inf may sit under a zero tap: skip it, as SciPy
            y = filter_planes(x, k, (0, 0), ("symm", "symm"), 0.0, dt, exact=True)
        parts.append(y[0])
    return parts


def roberts_pos_diag(image: Any, mask: Any = None) -> np.ndarray:
    """Roberts' cross, positive diagonal: ``skimage.filters.roberts_pos_diag`` (2-D image):
    ``out[i, j] = x[i+1, j+1] - x[i, j]``, 'reflect' at the far edges."""
    return _mask(_roberts(image, ("pos",))[0], mask)


def roberts_neg_diag(image: Any, mask: Any = None) -> np.ndarray:
    """Roberts' cross, negative diagonal: ``skimage.filters.roberts_neg_diag`` (2-D image):
    ``out[i, j] = x[i+1, j] - x[i, j+1]``."""
    return _mask(_roberts(image, ("neg",))[0], mask)


def roberts(image: Any, mask: Any = None) -> np.ndarray:
    """Roberts' cross magnitude ``sqrt((pos**2 + neg**2) / 2)``: ``skimage.filters.roberts``
    (2-D image; ``mask`` as :func:`sobel`)."""
    pos, neg = _roberts(image, ("pos", "neg"))
    return _mask(_magnitude([pos, neg], 1 / np.sqrt(2), pos.dtype), mask)
