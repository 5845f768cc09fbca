"""Saving and loading models as ``.npz`` (no pickle: loading a file cannot run code)."""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .models import MODELS, build_model

CONFIG_KEY = "__config__"
PARAM_PREFIX = "param/"
#: state-dict entries stored as int64 (key suffixes); every other entry is float32/float64
INT_BUFFERS = ("num_batches_tracked",)


class ModelFileError(ValueError):
    """A model file is missing, not an ``.npz`` written by fastconv, or does not fit its model."""


def save_model(model, path, force=False):
    """Write ``model``'s config and state dict to ``path`` (a ``.npz`` file).

    Parameters
    ----------
    model : Module with a ``config`` dict (as built by :mod:`fastconv.models`)
    path : str or Path; ``.npz`` is appended if missing
    force : bool
        Overwrite an existing file (otherwise ``FileExistsError``).

    The file is written under a temporary name and renamed, so an interrupted save never
    leaves a truncated model behind.
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; pass force=True (CLI: --force) to overwrite it")
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        raise ValueError("model has no config dict; build it with fastconv.models")
    arrays = {PARAM_PREFIX + k: v for k, v in model.state_dict().items()}
    arrays[CONFIG_KEY] = np.array(json.dumps(config))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_model(path):
    """Rebuild a model saved by :func:`save_model`.

    Raises
    ------
    ModelFileError
        Missing file, not an ``.npz``, no/invalid config, object arrays, or parameters whose
        names, shapes or dtypes do not fit the model; the message says which.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as f:
            if CONFIG_KEY not in f.files:
                raise ModelFileError(f"{path}: not a fastconv model (no {CONFIG_KEY} entry)")
            config = json.loads(str(f[CONFIG_KEY]))
            state = {}
            for k in f.files:
                if k == CONFIG_KEY:
                    continue
                if not k.startswith(PARAM_PREFIX):
                    raise ModelFileError(f"{path}: unexpected entry {k!r}")
                a, name = f[k], k[len(PARAM_PREFIX):]
                # counters (BatchNorm's num_batches_tracked) are int64; all else is float
                allowed = (np.int64,) if name.endswith(INT_BUFFERS) else (np.float32, np.float64)
                if a.dtype not in allowed:
                    expected = " or ".join(np.dtype(t).name for t in allowed)
                    raise ModelFileError(f"{path}: parameter {name!r} has dtype {a.dtype}, expected {expected}")
                state[name] = a
    except ModelFileError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, json.JSONDecodeError, EOFError) as e:
        raise ModelFileError(f"{path}: cannot read model file ({e})") from e
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        raise ModelFileError(f"{path}: config must name a model in {sorted(MODELS)}, got {config!r}")
    try:
        dtypes = {a.dtype for a in state.values() if a.dtype.kind == "f"}
        model = build_model(config, dtype=dtypes.pop() if len(dtypes) == 1 else np.float32)
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: parameters do not fit {config['model']}: {e}") from e
    return model
