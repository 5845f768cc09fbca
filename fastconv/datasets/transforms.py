"""Augmentation on whole batches of images, as torchvision's transforms but vectorised.

Each transform is called as ``t(images, rng)`` on a float batch of shape (N, C, H, W)
(what :class:`fastconv.datasets.BatchIterator` yields) and returns a new array of the
same dtype; ``images`` is not modified. Random transforms draw only from the
``numpy.random.Generator`` passed in (an int seeds a new one), in the order their
docstrings state, so a fixed seed gives the same batch. No Python loop runs over the
samples: the per-sample choices are drawn as arrays and applied by indexing.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._typing import FloatArray
from .._validation import check_choice

__all__ = ["Compose", "RandomCrop", "RandomHorizontalFlip", "Normalize"]

# torchvision's padding_mode -> np.pad's mode
_PAD_MODES = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}


def _check_batch(images):
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy.ndarray, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {images.shape}")
    if images.dtype.kind not in "fiu":
        raise TypeError(f"images must have a real dtype, got {images.dtype}")
    return images


def _check_rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")


def _check_size(size, name):
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in size)):
        raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {size!r}")
    if min(size) < 1:
        raise ValueError(f"{name} must be positive, got {tuple(size)}")
    return int(size[0]), int(size[1])


def _check_padding(padding):
    """torchvision's forms -> (left, top, right, bottom)."""
    if padding is None:
        return (0, 0, 0, 0)
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        padding = (padding,)
    if (not isinstance(padding, (tuple, list)) or len(padding) not in (1, 2, 4)
            or not all(isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in padding)):
        raise TypeError("padding must be None, an int, a pair (left/right, top/bottom) or 4 ints "
                        f"(left, top, right, bottom), got {padding!r}")
    if min(padding) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    if len(padding) == 1:
        padding = tuple(padding) * 4
    elif len(padding) == 2:
        padding = tuple(padding) * 2
    return tuple(int(p) for p in padding)


class Compose:
    """Apply transforms in order: ``Compose([RandomCrop(28, 2), RandomHorizontalFlip()])``.

    Parameters
    ----------
    transforms : sequence of callables ``t(images, rng)``
    """

    def __init__(self, transforms: Sequence[Callable[..., FloatArray]]) -> None:
        if isinstance(transforms, (str, bytes)) or not hasattr(transforms, "__iter__"):
            raise TypeError(f"transforms must be a sequence of callables, got {type(transforms).__name__}")
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable as t(images, rng), got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, images: FloatArray, rng: np.random.Generator | int | None = None) -> FloatArray:
        if rng is not None:
            rng = _check_rng(rng)  # an int seeds one generator that every transform draws from
        for t in self.transforms:
            images = t(images, rng)
        return images

    def __repr__(self):
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomCrop:
    """Pad every image, then crop each at its own random position, as
    ``torchvision.transforms.RandomCrop``.

    Parameters
    ----------
    size : int or (int, int)
        Output (height, width).
    padding : None, int, (int, int) or (int, int, int, int), optional
        Added on the borders first: all sides; (left/right, top/bottom); or (left, top,
        right, bottom), as torchvision.
    padding_mode : {"constant", "edge", "reflect", "symmetric"}, default "constant"
        As torchvision (``np.pad``'s modes of the same names).
    fill : float, default 0
        The value of constant padding.

    Notes
    -----
    The batch is padded once (``np.pad``); then ``top = rng.integers(0, H' - h + 1, size=N)``
    and ``left = rng.integers(0, W' - w + 1, size=N)`` are drawn, in that order (H', W':
    padded size), and sample n is ``padded[n, :, top[n]:top[n]+h, left[n]:left[n]+w]``.
    torchvision's ``pad_if_needed`` and per-channel fills are not offered.
    """

    def __init__(self, size: int | tuple[int, int], padding: int | Sequence[int] | None = None,
                 padding_mode: str = "constant", fill: float = 0) -> None:
        self.size = _check_size(size, "size")
        self.padding = _check_padding(padding)
        self.padding_mode = check_choice(padding_mode, "padding_mode", _PAD_MODES)
        if isinstance(fill, bool) or not isinstance(fill, numbers.Real):
            raise TypeError(f"fill must be a number, got {type(fill).__name__} {fill!r}")
        self.fill: float = fill

    def pad(self, images: FloatArray) -> FloatArray:
        """The batch with this transform's padding (a new array, or ``images`` itself when
        there is none)."""
        left, top, right, bottom = self.padding
        if not any(self.padding):
            return images
        widths = ((0, 0), (0, 0), (top, bottom), (left, right))
        mode = _PAD_MODES[self.padding_mode]
        if mode == "constant":
            return np.pad(images, widths, mode, constant_values=np.asarray(self.fill).astype(images.dtype))
        return np.pad(images, widths, mode)

    def __call__(self, images: FloatArray, rng: np.random.Generator | int | None) -> FloatArray:
        images = _check_batch(images)
        rng = _check_rng(rng)
        h, w = self.size
        padded = self.pad(images)
        n, _, ph, pw = padded.shape
        if ph < h or pw < w:
            raise ValueError(f"RandomCrop of size {self.size} is larger than the padded images "
                             f"({ph}, {pw})")
        top = rng.integers(0, ph - h + 1, size=n)
        left = rng.integers(0, pw - w + 1, size=n)
        # windows[n, c, i, j] is the (h, w) crop at (i, j); pick one per sample (a copy)
        windows = sliding_window_view(padded, (h, w), axis=(2, 3))
        return np.ascontiguousarray(windows[np.arange(n), :, top, left])

    def __repr__(self):
        return (f"RandomCrop(size={self.size}, padding={self.padding}, padding_mode={self.padding_mode!r}, "
                f"fill={self.fill})")


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``, as
    ``torchvision.transforms.RandomHorizontalFlip``.

    Parameters
    ----------
    p : float, default 0.5

    Notes
    -----
    Draws ``flip = rng.random(N) < p`` (one value per sample).
    """

    def __init__(self, p: float = 0.5) -> None:
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"p must be a float, got {type(p).__name__} {p!r}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p: float = float(p)

    def __call__(self, images: FloatArray, rng: np.random.Generator | int | None) -> FloatArray:
        images = _check_batch(images)
        rng = _check_rng(rng)
        flip = rng.random(len(images)) < self.p
        out = np.array(images, order="C", copy=True)
        out[flip] = images[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """``(images - mean) / std`` per channel, as ``torchvision.transforms.Normalize``
    (computed in the images' float dtype).

    Parameters
    ----------
    mean, std : float or sequence of float (one per channel)
        ``std`` must be non-zero.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = self._values(mean, "mean")
        self.std = self._values(std, "std")
        if np.any(self.std == 0):
            raise ValueError(f"std must be non-zero, got {self.std.tolist()}")
        if self.mean.size != 1 and self.std.size != 1 and self.mean.size != self.std.size:
            raise ValueError(f"mean and std must have one value per channel, got {self.mean.size} "
                             f"and {self.std.size}")

    @staticmethod
    def _values(v, name):
        try:
            a = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a float or a sequence of floats, got {v!r}") from None
        if a.ndim > 1 or a.size == 0 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be a finite float or a 1-D sequence of them, got {v!r}")
        return a.reshape(-1)

    def __call__(self, images: FloatArray, rng: np.random.Generator | int | None = None) -> FloatArray:
        images = _check_batch(images)
        if images.dtype.kind != "f":
            raise TypeError(f"images must have a float dtype for Normalize, got {images.dtype}")
        c = images.shape[1]
        for name, a in (("mean", self.mean), ("std", self.std)):
            if a.size not in (1, c):
                raise ValueError(f"{name} has {a.size} values, but the images have {c} channels")
        dt = images.dtype
        mean = self.mean.astype(dt).reshape(1, -1, 1, 1)
        std = self.std.astype(dt).reshape(1, -1, 1, 1)
        return (images - mean) / std

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
