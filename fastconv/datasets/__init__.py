"""MNIST and Fashion-MNIST from IDX files: find, verify, download, and batch.

Root resolution for ``load_mnist(root=None)``: the ``root`` argument, then the
``FASTCONV_DATA`` environment variable, then ``~/.cache/fastconv/<dataset>`` (and for
Fashion-MNIST also ``/usr/share/datasets/fashion-mnist``, Debian's
``dataset-fashion-mnist``). In each candidate folder the files may sit directly or in a
``<dataset>/`` subfolder, gzip-compressed (``.gz``) or raw.

Batch augmentation (random crops, flips, normalisation) is in
:mod:`fastconv.datasets.transforms`; pass it to :class:`BatchIterator` as ``transform``.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Union

import numpy as np

from .._random import get_rng
from .._typing import DTypeLike, FloatArray, NDArray, RNGLike
from .._validation import check_choice

_Path = Union[str, "os.PathLike[str]"]


class DatasetError(ValueError):
    """A data file is missing, truncated, corrupt or inconsistent."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset's files are not in any searched folder."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    files: dict  # split -> (images file, labels file), without .gz
    sha256: dict  # file -> SHA-256 of the decompressed bytes
    mirrors: tuple
    mean: float  # training-set pixel mean and std in [0, 1], for normalisation
    std: float
    extra_roots: tuple = ()


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Checksums of the *decompressed* files: mirrors recompress (the shared MNIST copy and
# Debian's Fashion-MNIST do), so the content, not the .gz bytes, is what we verify.
DATASETS = {
    "mnist": DatasetInfo(
        name="mnist",
        files=_IDX_FILES,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        mean=0.1307,
        std=0.3081,
    ),
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        files=_IDX_FILES,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        mean=0.2860,
        std=0.3530,
        extra_roots=("/usr/share/datasets/fashion-mnist",),
    ),
}

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def default_cache_dir(dataset: str) -> Path:
    """``~/.cache/fastconv/<dataset>`` (``$XDG_CACHE_HOME`` respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastconv" / dataset


def _candidate_roots(info, root):
    if root is not None:
        roots = [Path(root)]
    else:
        roots = []
        if os.environ.get("FASTCONV_DATA"):
            roots.append(Path(os.environ["FASTCONV_DATA"]))
        roots.append(default_cache_dir(info.name))
        roots += [Path(r) for r in info.extra_roots]
    out = []
    for r in roots:
        out += [r, r / info.name]
    return out


def _find_file(folder, stem):
    for name in (stem + ".gz", stem):
        p = folder / name
        if p.is_file():
            return p
    return None


def read_idx(path: _Path, expected_magic: int | None = None) -> NDArray[np.uint8]:
    """Read an IDX file (``.gz`` or raw) into a uint8 array, checking its header and length.

    Raises
    ------
    DatasetError
        Naming the file and what was expected, for a truncated or corrupt file.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot decompress or read ({e}); the file is truncated or corrupt") from e
    if len(data) < 8:
        raise DatasetError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DatasetError(f"{path}: bad IDX magic number {magic} (expected unsigned-byte data, 2049 or 2051)")
    if expected_magic is not None and magic != expected_magic:
        raise DatasetError(f"{path}: IDX magic number {magic}, expected {expected_magic}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{path}: truncated IDX header ({len(data)} bytes, {ndim} dimensions)")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise DatasetError(
            f"{path}: {len(data)} bytes but the header {dims} needs {expected}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims).copy()


def _missing_message(info, roots, split):
    searched = ", ".join(str(r) for r in roots)
    images, labels = info.files[split]
    hint = (
        f"pass root=/path/to/folder (CLI: --data DIR), set FASTCONV_DATA, or use download=True "
        f"(CLI: --download) to fetch them into {default_cache_dir(info.name)}"
    )
    if info.name == "fashion-mnist":
        hint += "; on Debian/Ubuntu: apt-get install dataset-fashion-mnist"
    return f"{info.name} {split} files ({images}[.gz], {labels}[.gz]) not found in: {searched}. To get them, {hint}"


def _load(dataset, root, split, download):
    check_choice(dataset, "dataset", DATASETS)
    check_choice(split, "split", ("train", "test"))
    info = DATASETS[dataset]
    images_stem, labels_stem = info.files[split]
    roots = _candidate_roots(info, root)
    for folder in roots:
        img, lab = _find_file(folder, images_stem), _find_file(folder, labels_stem)
        if img is not None and lab is not None:
            break
        if img is not None or lab is not None:
            have, missing = (img, labels_stem) if img is not None else (lab, images_stem)
            raise DatasetNotFoundError(f"{folder}: found {have.name} but not {missing}[.gz]; the dataset is incomplete")
    else:
        if not download:
            raise DatasetNotFoundError(_missing_message(info, roots, split))
        folder = Path(root) if root is not None else default_cache_dir(info.name)
        img = download_file(info, images_stem, folder)
        lab = download_file(info, labels_stem, folder)
    images = read_idx(img, IDX_IMAGES_MAGIC)
    labels = read_idx(lab, IDX_LABELS_MAGIC)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DatasetError(f"{img}: images must have shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DatasetError(f"{lab}: labels must be 1-D, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DatasetError(
            f"{folder}: {img.name} has {len(images)} images but {lab.name} has {len(labels)} labels"
        )
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{lab}: labels must be 0-9, found {labels.max()}")
    return images, labels


def load_mnist(root: _Path | None = None, split: str = "train",
               download: bool = False) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Load MNIST.

    Parameters
    ----------
    root : str or Path, optional
        Folder holding the IDX files; see the module docstring for the search order.
    split : {"train", "test"}
    download : bool
        Fetch missing files from the usual mirrors (checksum-verified) into ``root`` or the
        cache folder.

    Returns
    -------
    images : ndarray of uint8, shape (N, 28, 28)
    labels : ndarray of uint8, shape (N,)
    """
    return _load("mnist", root, split, download)


def load_fashion_mnist(root: _Path | None = None, split: str = "train",
                       download: bool = False) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Load Fashion-MNIST; same interface as :func:`load_mnist`."""
    return _load("fashion-mnist", root, split, download)


def load_dataset(name: str, root: _Path | None = None, split: str = "train",
                 download: bool = False) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """Load ``"mnist"`` or ``"fashion-mnist"`` by name."""
    return _load(name, root, split, download)


def _urlopen(url, timeout=30):
    # Indirection so tests can serve files without the network.
    return urllib.request.urlopen(url, timeout=timeout)


def _sha256_of_content(path):
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(info: DatasetInfo, stem: str, folder: _Path) -> Path:
    """Download ``<stem>.gz`` into ``folder`` from the first mirror that serves it intact.

    The file is written to a temporary name in ``folder``, its decompressed SHA-256 checked
    against the published value, and only then renamed into place (atomic on POSIX), so an
    interrupted or corrupt download never leaves a partial file under the real name.

    Returns
    -------
    Path of the verified file.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (stem + ".gz")
    errors = []
    for mirror in info.mirrors:
        url = mirror + stem + ".gz"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".part", dir=folder)
        try:
            with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
                shutil.copyfileobj(response, out)
            try:
                digest = _sha256_of_content(tmp)
            except (OSError, EOFError, zlib.error) as e:
                raise DatasetError(f"not a valid gzip file ({e})") from e
            if digest != info.sha256[stem]:
                raise DatasetError(f"checksum mismatch: SHA-256 {digest}, expected {info.sha256[stem]}")
            os.replace(tmp, target)
            return target
        except Exception as e:  # noqa: BLE001 - try the next mirror, report all at the end
            errors.append(f"{url}: {e}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DatasetError(f"could not download {stem}.gz into {folder}: " + "; ".join(errors))


class BatchIterator:
    """Mini-batches of images as float arrays (N, 1, 28, 28) in [0, 1], optionally normalised.

    Parameters
    ----------
    images : ndarray of uint8, shape (N, 28, 28)
    labels : ndarray of ints, shape (N,)
    batch_size : int
    shuffle : bool
        Reshuffle at the start of every epoch (every ``iter()``).
    drop_last : bool
        Drop a final batch smaller than ``batch_size``.
    normalize : (mean, std) or None
        Applied after scaling to [0, 1].
    rng : numpy.random.Generator or int, optional
        Shuffling generator (seeded: the same order each run).
    dtype : float32 (default) or float64
    transform : callable, optional
        ``transform(x, rng)`` applied to every batch ``x`` (N, 1, H, W) after scaling and
        normalising, e.g. a :class:`fastconv.datasets.transforms.Compose`. Its ``rng`` is a
        generator spawned from the iterator's at construction (``rng.spawn(1)``), so the
        augmentation is fixed by the iterator's seed and the shuffling order is the same
        with or without a transform.
    sampler : fastconv.distributed.DistributedSampler, optional
        Data-parallel training: ``batch_size`` is the global batch; every global batch (in
        the sampler's per-epoch order, which is this iterator's own ``shuffle=True, rng=seed``
        order for the same seed) is converted and transformed whole, and this rank's strided
        share of it is yielded. ``shuffle`` and ``rng``'s order are then not used.
    """

    def __init__(self, images: NDArray[Any], labels: NDArray[Any], batch_size: int = 64, shuffle: bool = False,
                 drop_last: bool = False, normalize: tuple[float, float] | None = None, rng: RNGLike = None,
                 dtype: DTypeLike = np.float32,
                 transform: Callable[[FloatArray, Any], FloatArray] | None = None,
                 sampler: Any = None) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 3:
            raise ValueError(f"images must have shape (N, H, W), got {images.shape}")
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.images, self.labels = images, labels
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.dtype = np.dtype(dtype)
        if normalize is not None:
            mean, std = normalize
            if std <= 0:
                raise ValueError(f"normalize std must be positive, got {std}")
            self._scale = 1.0 / (255.0 * std)
            self._shift = -mean / std
        else:
            self._scale, self._shift = 1.0 / 255.0, 0.0
        self._rng = get_rng(rng)
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable as transform(images, rng), got {type(transform).__name__}")
        self.transform = transform
        self._transform_rng = _spawn(self._rng) if transform is not None else None
        if sampler is not None and getattr(sampler, "num_samples", None) != len(images):
            raise ValueError(f"sampler must be a DistributedSampler over {len(images)} samples, got {sampler!r}")
        self.sampler = sampler

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def to_float(self, images: NDArray[Any]) -> FloatArray:
        """uint8 (B, H, W) -> float (B, 1, H, W), scaled and normalised as configured."""
        x = images.astype(self.dtype)
        x *= self.dtype.type(self._scale)
        if self._shift:
            x += self.dtype.type(self._shift)
        return x[:, None]

    def __iter__(self) -> Iterator[tuple[FloatArray, NDArray[Any]]]:
        if self.sampler is not None:
            yield from self.sampler._iterate(self)
            return
        n = len(self.images)
        order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for i in range(len(self)):
            idx = order[i * self.batch_size: (i + 1) * self.batch_size]
            x = self.to_float(self.images[idx])
            if self.transform is not None:
                x = self.transform(x, self._transform_rng)
            yield x, self.labels[idx]


def _spawn(rng):
    """An independent child of ``rng`` whose draws do not advance ``rng`` (a generator
    without a seed sequence to spawn from falls back to one seeded from ``rng``)."""
    try:
        return rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):
        return np.random.default_rng(rng.integers(2**63))


from . import transforms  # noqa: E402, F401  (the submodule, after the names it may import)
