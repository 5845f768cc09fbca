"""Saving and loading models and state dicts: ``.safetensors`` and ``.npz`` files.

:func:`save` / :func:`load` pick the format from the file's extension (:data:`FORMATS`):

``.safetensors``
    The `safetensors <https://huggingface.co/docs/safetensors>`_ format (a JSON header and
    raw little-endian arrays): what PyTorch users exchange weights in. A model's ``config``
    is stored as JSON in the header's metadata under :data:`CONFIG_METADATA_KEY`, the order
    of the state dict under :data:`KEYS_METADATA_KEY`. Files written by
    ``safetensors.torch.save_file(torch_model.state_dict(), path)`` load as state dicts
    that fit the equivalent fastconv model (the same keys and shapes, see
    :mod:`fastconv.models`), and files written here load with
    ``safetensors.torch.load_file``.
``.npz``
    NumPy's zip of ``.npy`` arrays: ``param/<key>`` entries and a ``__config__`` JSON string,
    read with ``allow_pickle=False``.

Neither format can run code when it is read. Files are written under a temporary name and
renamed, so an interrupted save never leaves a truncated file behind.
"""
from __future__ import annotations

import json
import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np

from ._atomic import atomic_write
from .models import MODELS, build_model
from .nn.module import Module, StateDictError

CONFIG_KEY = "__config__"
PARAM_PREFIX = "param/"
#: safetensors metadata key holding a model's ``config`` (JSON)
CONFIG_METADATA_KEY = "fastconv.config"
#: safetensors metadata key holding the state dict's key order (a JSON list)
KEYS_METADATA_KEY = "fastconv.keys"
#: state-dict entries stored as int64 (key suffixes); every other entry is float32/float64
INT_BUFFERS = ("num_batches_tracked",)
#: dtype kinds a state dict may hold (bool, signed and unsigned ints, floats)
_SAVABLE_KINDS = "biuf"
#: what a safetensors file may hold here (its BF16 / F8 / complex types are refused)
_READABLE_DTYPES = tuple(np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                               np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                               np.float64))


class ModelFileError(ValueError):
    """A model file is missing, unreadable, malformed, or does not fit its model."""


# -- formats ---------------------------------------------------------------------------
# A writer is ``writer(file, state, config)``: ``file`` a binary file object open for
# writing, ``state`` an ordered dict of C-contiguous native-order arrays, ``config`` a dict
# or None. A reader is ``reader(path)`` and returns ``(state, config_or_None)`` (raising
# ModelFileError, or any of _READ_ERRORS, for a bad file) or a ready-built Module.

def _write_npz(f, state, config):
    arrays = {PARAM_PREFIX + k: v for k, v in state.items()}
    if config is not None:
        arrays[CONFIG_KEY] = np.array(json.dumps(config))
    np.savez(f, **arrays)


def _read_npz(path):
    f = np.load(path, allow_pickle=False)
    if not isinstance(f, np.lib.npyio.NpzFile):  # a bare .npy renamed
        raise ModelFileError(f"{path}: not an .npz archive")
    with f:
        files = list(f.files)
        config = None
        if CONFIG_KEY in files:
            config = _parse_config(str(f[CONFIG_KEY]), path)
            files.remove(CONFIG_KEY)
        prefixed = config is not None or any(k.startswith(PARAM_PREFIX) for k in files)
        state = OrderedDict()
        for k in files:
            if prefixed and not k.startswith(PARAM_PREFIX):
                raise ModelFileError(f"{path}: unexpected entry {k!r} (fastconv's entries are "
                                     f"{PARAM_PREFIX}<key> and {CONFIG_KEY})")
            state[k[len(PARAM_PREFIX):] if prefixed else k] = f[k]
    return state, config


def _write_safetensors(f, state, config):
    from safetensors.numpy import save

    metadata = {KEYS_METADATA_KEY: json.dumps(list(state))}
    if config is not None:
        metadata[CONFIG_METADATA_KEY] = json.dumps(config)
    f.write(save(dict(state), metadata=metadata))


def _read_safetensors(path):
    from safetensors import SafetensorError, safe_open

    try:
        return _read_safetensors_unchecked(path, safe_open)
    except SafetensorError as e:
        raise ModelFileError(f"{path}: not a valid safetensors file ({e})") from e


def _read_safetensors_unchecked(path, safe_open):
    with safe_open(os.fspath(path), framework="np") as f:
        metadata = f.metadata() or {}
        keys = list(f.offset_keys())  # the order of the data in the file
        if KEYS_METADATA_KEY in metadata:
            order = _parse_json(metadata[KEYS_METADATA_KEY], path, KEYS_METADATA_KEY)
            if (not isinstance(order, list) or not all(isinstance(k, str) for k in order)
                    or sorted(order) != sorted(keys)):
                raise ModelFileError(f"{path}: metadata {KEYS_METADATA_KEY!r} does not list the "
                                     f"file's tensors")
            keys = order
        state = OrderedDict()
        for k in keys:
            try:  # a copy: the array must not refer to the memory-mapped file once it is closed
                a = np.array(f.get_tensor(k))
            except TypeError as e:  # bfloat16, float8: no NumPy dtype
                a, reason = None, str(e)
            else:  # (ml_dtypes, if something imported it, gives NumPy a bfloat16: refused alike)
                reason = f"dtype {a.dtype}"
            if a is None or a.dtype not in _READABLE_DTYPES:
                raise ModelFileError(f"{path}: tensor {k!r} has an unsupported dtype ({reason}; bool, "
                                     f"integer and float16/32/64 tensors are read): convert it to "
                                     f"float32 before saving")
            state[k] = a
    config = None
    if CONFIG_METADATA_KEY in metadata:
        config = _parse_config(metadata[CONFIG_METADATA_KEY], path)
    return state, config


#: extension -> (writer, reader); :func:`register_format` adds more (None: not supported
#: in that direction)
FORMATS = {
    ".npz": (_write_npz, _read_npz),
    ".safetensors": (_write_safetensors, _read_safetensors),
}


def register_format(extension, writer=None, reader=None):
    """Make :func:`save` / :func:`load` handle files ending in ``extension`` (e.g. ``".onnx"``).

    ``writer(file, state, config)`` writes to a binary file object; ``reader(path)`` returns
    ``(state_dict, config_or_None)`` or a ready-built Module. Either may be None (the format
    is then read-only or write-only).
    """
    if not isinstance(extension, str) or not extension.startswith(".") or len(extension) < 2:
        raise ValueError(f"extension must be a string such as '.onnx', got {extension!r}")
    for name, fn in (("writer", writer), ("reader", reader)):
        if fn is not None and not callable(fn):
            raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
    FORMATS[extension.lower()] = (writer, reader)


def _format(path, direction, error):
    """The writer (direction 0) or reader (1) for ``path``'s extension, or ``error``."""
    suffix = path.suffix.lower()
    fns = FORMATS.get(suffix)
    if fns is None or fns[direction] is None:
        supported = sorted(k for k, v in FORMATS.items() if v[direction] is not None)
        what = "write" if direction == 0 else "read"
        raise error(f"cannot {what} {str(path)!r}: the extension must be one of {supported}, "
                    f"got {suffix or 'none'!r}")
    return fns[direction]


_READ_ERRORS = (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile,
                json.JSONDecodeError)


def _parse_json(text, path, what):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise ModelFileError(f"{path}: {what} is not valid JSON ({e})") from e


def _parse_config(text, path):
    config = _parse_json(text, path, "the model config")
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        raise ModelFileError(f"{path}: config must name a model in {sorted(MODELS)}, got {config!r}")
    return config


def _check_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.name:
        raise ValueError(f"path must name a file, got {str(path)!r}")
    return path


# -- public API --------------------------------------------------------------------------

def save(obj: Module | Mapping[str, Any], path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write a model (its ``config`` and state dict) or a bare state dict to ``path``.

    Parameters
    ----------
    obj : Module or mapping of str to ndarray
        A model built by :mod:`fastconv.models` (its ``config`` dict is stored, so
        :func:`load` rebuilds it), any other Module (its state dict is stored), or a state
        dict (bool, integer or float arrays).
    path : str or os.PathLike
        Its extension picks the format: ``.safetensors`` or ``.npz`` (see :data:`FORMATS`).
        Missing parent folders are created.
    force : bool, default False
        Overwrite an existing file (otherwise ``FileExistsError``).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        ``obj`` is not a Module or a mapping of str to ndarray, ``path`` not a str or
        PathLike, ``force`` not a bool.
    ValueError
        An unknown extension (the message lists the supported ones), a config that is not a
        JSON-serialisable dict naming a model of :data:`fastconv.models.MODELS`, an array of
        an unsupported dtype.
    FileExistsError
        ``path`` exists and ``force`` is False.
    """
    path = _check_path(path)
    if not isinstance(force, (bool, np.bool_)):
        raise TypeError(f"force must be a bool, got {type(force).__name__}")
    writer = _format(path, 0, ValueError)
    state, config = _state_and_config(obj)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass force=True (CLI: --force) to overwrite it")
    return atomic_write(path, lambda f: writer(f, state, config))


def load(path: str | os.PathLike[str]) -> Module | dict[str, Any]:
    """Read a file written by :func:`save` (or a PyTorch state dict saved as safetensors).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` or ``.npz`` file (see :data:`FORMATS`).

    Returns
    -------
    Module or dict
        The rebuilt model (with its ``config``) when the file holds a model config; else the
        state dict: an ordered dict of str to ndarray in the file's order (pass it to a
        model's :meth:`~fastconv.nn.Module.load_state_dict`).

    Raises
    ------
    TypeError
        ``path`` is not a str or PathLike.
    ModelFileError
        (a ``ValueError``) an unknown extension (listing the supported ones), a missing
        file, a truncated or malformed file (bad header, offsets, dtypes, JSON), a config
        naming no known model, or arrays whose keys, shapes or dtypes do not fit the model
        (all of them listed in one message).
    """
    path = _check_path(path)
    reader = _format(path, 1, ModelFileError)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        result = reader(path)
    except ModelFileError:
        raise
    except _READ_ERRORS as e:
        raise ModelFileError(f"{path}: cannot read model file ({e})") from e
    if isinstance(result, Module):
        return result
    state, config = result
    if config is None:
        return dict(state)
    return _build(state, config, path)


def _build(state, config, path):
    """The model ``config`` describes, with ``state`` loaded (ModelFileError listing all
    that does not fit)."""
    dtypes = {a.dtype for a in state.values() if a.dtype in (np.float32, np.float64)}
    try:
        model = build_model(config, dtype=dtypes.pop() if len(dtypes) == 1 else np.float32)
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: cannot build the model its config describes ({e})") from e
    own = set(model.state_dict())
    problems = []
    try:
        model.load_state_dict(state, strict=True)
    except StateDictError as e:
        problems = e.problems
    # keys the model does not have are reported above; say what their dtype is if odd
    for name, a in state.items():
        if name not in own:
            expected = (np.int64,) if name.endswith(INT_BUFFERS) else (np.float32, np.float64)
            if a.dtype not in expected:
                problems.append(f"{name!r} has dtype {a.dtype}, expected "
                                + " or ".join(np.dtype(t).name for t in expected))
    if problems:
        raise ModelFileError(f"{path}: parameters do not fit {config['model']}: " + "; ".join(problems))
    return model


def _state_and_config(obj):
    """(ordered dict of contiguous native-order arrays, config or None) of a save() argument."""
    if isinstance(obj, Module):
        config = getattr(obj, "config", None)
        if config is not None:
            if not isinstance(config, dict) or config.get("model") not in MODELS:
                raise ValueError(f"obj.config must be a dict naming a model in {sorted(MODELS)}, "
                                 f"got {config!r}")
            try:
                config = json.loads(json.dumps(config))
            except (TypeError, ValueError) as e:
                raise ValueError(f"obj.config must be JSON-serialisable ({e})") from e
        items: Iterable[tuple[str, Any]] = obj.state_dict().items()
    elif isinstance(obj, Mapping):
        config, items = None, obj.items()
    else:
        raise TypeError(f"obj must be a Module or a mapping of str to ndarray (a state dict), "
                        f"got {type(obj).__name__}")
    state = OrderedDict()
    for k, v in items:
        if not isinstance(k, str) or not k:
            raise TypeError(f"obj's keys must be non-empty strings, got {k!r}")
        if k == "__metadata__":
            raise ValueError("obj's key '__metadata__' is reserved by the safetensors format")
        if not isinstance(v, (np.ndarray, np.generic)):
            raise TypeError(f"obj[{k!r}] must be an ndarray, got {type(v).__name__}")
        v = np.asarray(v)
        if v.dtype.kind not in _SAVABLE_KINDS:
            raise ValueError(f"obj[{k!r}] has dtype {v.dtype}; a state dict holds bool, integer "
                             f"or float arrays")
        state[k] = v.astype(v.dtype.newbyteorder("="), order="C", copy=False)
    return state, config


def model_path(path):
    """The file :func:`save_model` writes for ``path``: ``path`` itself if it ends in a
    known extension (``.npz``, ``.safetensors``), else ``path`` + ``.npz``."""
    path = Path(path)
    writable = {k for k, v in FORMATS.items() if v[0] is not None}
    return path if path.suffix.lower() in writable else path.with_name(path.name + ".npz")


def save_model(model, path, force=False):
    """Write ``model``'s config and state dict to ``path`` (see :func:`save`).

    Parameters
    ----------
    model : Module with a ``config`` dict (as built by :mod:`fastconv.models`)
    path : str or Path; ``.npz`` is appended unless it ends in ``.npz`` or ``.safetensors``
    force : bool
        Overwrite an existing file (otherwise ``FileExistsError``).
    """
    if not isinstance(getattr(model, "config", None), dict):
        raise ValueError("model has no config dict; build it with fastconv.models")
    return save(model, model_path(_check_path(path)), force=force)


def load_model(path):
    """Rebuild a model saved by :func:`save_model` / :func:`save` (``.npz`` or
    ``.safetensors``).

    Raises
    ------
    ModelFileError
        As :func:`load`, and for a file holding no model config (a bare state dict).
    """
    result = load(path)
    if not isinstance(result, Module):
        raise ModelFileError(f"{path}: not a fastconv model (no config: a bare state dict; load "
                             f"it with fastconv.load and pass it to a model's load_state_dict)")
    return result
