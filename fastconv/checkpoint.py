"""Training checkpoints that survive a kill: save, validate, find the latest, restore.

A checkpoint directory holds files ``ckpt-<epoch>-<step>.safetensors`` (``epoch``: completed
epochs, ``step``: optimizer steps done, both zero-padded so names sort). Each file is one
`safetensors <https://huggingface.co/docs/safetensors>`_ file (no pickle: nothing in it can
run code when read) holding

- the model's state dict (parameters and buffers: BatchNorm running statistics,
  ``num_batches_tracked``) under ``model/<key>``;
- every other array (optimizer state: momentum buffers, Adam moments; NumPy scalars) as a
  tensor, referred to from a JSON document in the header's metadata
  (:data:`PAYLOAD_KEY`) that holds the rest: the optimizer's ``param_groups`` and scalar
  state, the scheduler's state dict, ``epoch``, ``step``, the states of the random
  generators (``bit_generator.state``), the metrics so far, the run's config and any
  ``extra`` state of the loop;
- a SHA-256 of the JSON document and of every tensor (name, dtype, shape, bytes) under
  :data:`CHECKSUM_KEY`, so a truncated or corrupted file is refused rather than loaded.

Writes are atomic: the bytes go to a temporary file in the same directory (``.ckpt-*.part``),
which is flushed and fsync'ed, renamed over the final name (``os.replace``), and the
directory is fsync'ed; only then are checkpoints older than the newest ``keep`` removed. A
process killed at any moment therefore leaves the previous checkpoint complete, and at
worst a stray ``.part`` file that no reader looks at (the next save removes it).

Example
-------
>>> save_checkpoint("run/", model=model, optimizer=opt, scheduler=sched, epoch=3,
...                 step=3 * len(batches), rngs={"global": rng}, metrics=records,
...                 config={"lr": 0.1})                                    # doctest: +SKIP
>>> ckpt = load_checkpoint("run/")                   # the latest complete one  # doctest: +SKIP
>>> ckpt.check_config({"lr": 0.1})                                        # doctest: +SKIP
>>> ckpt.restore(model=model, optimizer=opt, scheduler=sched, rngs={"global": rng})  # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

_Path = Union[str, "os.PathLike[str]"]

#: safetensors metadata key of the JSON document (everything but the arrays)
PAYLOAD_KEY = "fastconv.checkpoint"
#: safetensors metadata key of the SHA-256 over the document and the tensors
CHECKSUM_KEY = "fastconv.checkpoint.sha256"
FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-(\d+)-(\d+)\.safetensors$")
_PART_PREFIX = ".ckpt-"


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not fit the run loading it."""


# -- encoding: nested Python state <-> (JSON document, tensors) -----------------------------

def _encode(obj: Any, path: str, tensors: dict[str, np.ndarray]) -> Any:
    """A JSON-able image of ``obj``; arrays and NumPy scalars go to ``tensors``.

    Tuples, Counters, dicts with non-string keys and arrays are tagged (``{"__tuple__": ...}``)
    so that :func:`_decode` gives back the same types and values bit for bit (JSON floats
    round-trip exactly through ``repr``)."""
    if isinstance(obj, (np.ndarray, np.generic)):
        name = path
        i = 1
        while name in tensors:
            i += 1
            name = f"{path}#{i}"
        a = np.asarray(obj)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{path}: cannot store an array of dtype {a.dtype} in a checkpoint")
        tensors[name] = np.array(a, dtype=a.dtype.newbyteorder("="), order="C")  # (0-d stays 0-d)
        return {"__scalar__" if isinstance(obj, np.generic) else "__array__": name}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, Counter):
        return {"__counter__": [[_encode(k, f"{path}/key", tensors), _encode(v, f"{path}/{k}", tensors)]
                                for k, v in obj.items()]}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, f"{path}/{k}", tensors) for k, v in obj.items()}
        return {"__dict__": [[_encode(k, f"{path}/key", tensors), _encode(v, f"{path}/{k}", tensors)]
                             for k, v in obj.items()]}
    raise TypeError(f"{path}: cannot store a {type(obj).__name__} in a checkpoint (arrays, numbers, "
                    f"strings, None, lists, tuples and dicts are stored)")


def _decode(obj: Any, tensors: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "__array__":
            return tensors[value].copy()
        if tag == "__scalar__":
            return tensors[value][()]
        if tag == "__tuple__":
            return tuple(_decode(v, tensors) for v in value)
        if tag == "__counter__":
            return Counter({_decode(k, tensors): _decode(v, tensors) for k, v in value})
        if tag == "__dict__":
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def _checksum(document: str, tensors: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256(document.encode("utf-8"))
    for name in sorted(tensors):
        a = tensors[name]
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8"))
        h.update(a.tobytes(order="C"))
    return h.hexdigest()


# -- files --------------------------------------------------------------------------------

def atomic_write_bytes(path: _Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that ``path`` is always either the old file or the new
    one, whole (:func:`fastconv._atomic.atomic_write`: a temporary file in the same
    directory, flushed and fsync'ed, ``os.replace``, an fsync of the directory).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from ._atomic import atomic_write

    return atomic_write(path, lambda f: f.write(data))


def _check_directory(directory: Any, name: str = "directory") -> Path:
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(directory).__name__}")
    return Path(directory)


def _check_count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def checkpoint_name(epoch: int, step: int) -> str:
    """The file name of the checkpoint after ``epoch`` completed epochs and ``step`` steps."""
    return f"ckpt-{epoch:06d}-{step:09d}.safetensors"


def list_checkpoints(directory: _Path) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first (by step, then epoch); temporary
    ``.part`` files are not listed. Files are not validated (see :func:`latest_checkpoint`)."""
    directory = _check_directory(directory)
    found = []
    if directory.is_dir():
        for p in directory.iterdir():
            m = _NAME.match(p.name)
            if m and p.is_file():
                found.append(((int(m.group(2)), int(m.group(1))), p))
    return [p for _, p in sorted(found)]


def _state_dict_of_rng(value: Any, name: str) -> dict[str, Any]:
    if isinstance(value, np.random.Generator):
        return dict(value.bit_generator.state)
    if isinstance(value, np.random.BitGenerator):
        return dict(value.state)
    if isinstance(value, Mapping) and "bit_generator" in value:
        return dict(value)
    raise TypeError(f"rngs[{name!r}] must be a numpy.random.Generator or its bit_generator.state dict, "
                    f"got {type(value).__name__}")


def save_checkpoint(directory: _Path, *, model: Any, optimizer: Any = None, scheduler: Any = None,
                    epoch: int, step: int, rngs: Mapping[str, Any] | None = None,
                    metrics: Any = (), config: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None, keep: int = 2) -> Path:
    """Write a checkpoint atomically into ``directory`` (created if missing).

    Parameters
    ----------
    directory : str or os.PathLike
    model : Module
        Its :meth:`~fastconv.nn.Module.state_dict` (parameters and buffers) is stored.
    optimizer : Optimizer, optional
        Its ``state_dict()`` (hyper-parameters of every group, momentum/moment arrays).
    scheduler : LRScheduler, optional
        Its ``state_dict()``.
    epoch : int
        Completed epochs (>= 0).
    step : int
        Optimizer steps done so far (>= 0).
    rngs : mapping of str to numpy.random.Generator (or its ``bit_generator.state``), optional
        The random generators the run draws from; their states are stored by name.
    metrics : list, optional
        The metrics records so far (JSON-able, e.g. one dict per epoch).
    config : mapping, optional
        What defines the run (model config, hyper-parameters); compared on resume by
        :meth:`Checkpoint.check_config`.
    extra : mapping, optional
        Any other state of the loop (numbers, strings, lists, dicts, arrays).
    keep : int, default 2
        How many checkpoints to keep: older ones are removed once the new one is complete.

    Returns
    -------
    pathlib.Path
        The file written, ``directory/ckpt-<epoch>-<step>.safetensors``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument that has the wrong type or value (e.g. state that cannot be
        stored: an object that is not an array, number, string, list, tuple or dict).
    """
    from safetensors.numpy import save as st_save

    directory = _check_directory(directory)
    epoch = _check_count(epoch, "epoch", 0)
    step = _check_count(step, "step", 0)
    keep = _check_count(keep, "keep", 1)
    if not hasattr(model, "state_dict"):
        raise TypeError(f"model must be a fastconv Module, got {type(model).__name__}")
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is not None and not hasattr(obj, "state_dict"):
            raise TypeError(f"{name} must have a state_dict() method or be None, got {type(obj).__name__}")
    if rngs is not None and not isinstance(rngs, Mapping):
        raise TypeError(f"rngs must be a mapping of names to generators, got {type(rngs).__name__}")
    for name, obj in (("config", config), ("extra", extra)):
        if obj is not None and not isinstance(obj, Mapping):
            raise TypeError(f"{name} must be a mapping or None, got {type(obj).__name__}")
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"directory {str(directory)!r} exists and is not a directory")

    tensors: dict[str, np.ndarray] = {}
    model_state = OrderedDict(model.state_dict())
    payload = {
        "format": "fastconv-checkpoint",
        "version": FORMAT_VERSION,
        "epoch": epoch,
        "step": step,
        "model": {k: _encode(np.asarray(v), f"model/{k}", tensors) for k, v in model_state.items()},
        "optimizer": None if optimizer is None else _encode(optimizer.state_dict(), "optimizer", tensors),
        "scheduler": None if scheduler is None else _encode(scheduler.state_dict(), "scheduler", tensors),
        "rngs": {str(k): _encode(_state_dict_of_rng(v, k), f"rngs/{k}", tensors)
                 for k, v in (rngs or {}).items()},
        "metrics": _encode(list(metrics), "metrics", tensors),
        "config": _encode(dict(config or {}), "config", tensors),
        "extra": _encode(dict(extra or {}), "extra", tensors),
    }
    document = json.dumps(payload)
    data = st_save(tensors, metadata={PAYLOAD_KEY: document, CHECKSUM_KEY: _checksum(document, tensors)})

    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(_PART_PREFIX + "*.part"):  # left by a writer killed mid-write
        try:
            stale.unlink()
        except OSError:
            pass
    path = atomic_write_bytes(directory / checkpoint_name(epoch, step), data)
    older = [p for p in list_checkpoints(directory) if p != path]
    for p in older[: max(0, len(older) - (keep - 1))]:
        try:
            p.unlink()
        except OSError:
            pass
    return path


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` read (everything already validated by its checksum).

    Attributes
    ----------
    path : pathlib.Path
    epoch, step : int
        Completed epochs and optimizer steps.
    model_state : dict of str to ndarray
        The model's state dict, in its order.
    optimizer_state, scheduler_state : dict or None
    rngs : dict of str to dict
        ``bit_generator.state`` of every saved generator.
    metrics : list
    config, extra : dict
    """

    path: Path
    epoch: int
    step: int
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None = None
    scheduler_state: dict[str, Any] | None = None
    rngs: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: list[Any] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def config_differences(self, config: Mapping[str, Any]) -> list[str]:
        """``"key: X in the checkpoint, Y now"`` for every key of ``config`` or of the saved
        config whose values differ (nested dicts compared key by key, dotted names)."""
        out: list[str] = []
        tensors: dict[str, np.ndarray] = {}  # the same round trip as the saved config had
        _diff(self.config, _decode(_encode(dict(config), "config", tensors), tensors), "", out)
        return out

    def check_config(self, config: Mapping[str, Any]) -> None:
        """Raise :class:`CheckpointError` naming every difference between the saved config and
        ``config`` (see :meth:`config_differences`); nothing if they agree."""
        diffs = self.config_differences(config)
        if diffs:
            raise CheckpointError(f"{self.path} was written by a different run: " + "; ".join(diffs))

    def restore(self, *, model: Any = None, optimizer: Any = None, scheduler: Any = None,
                rngs: Mapping[str, np.random.Generator] | None = None) -> None:
        """Load the saved state into the given objects (each optional).

        ``rngs`` maps names (as saved) to the generators whose ``bit_generator.state`` is
        set. Raises :class:`CheckpointError` naming what does not fit (a state-dict key or
        shape, an optimizer group, a scheduler kind, a generator missing from the checkpoint).
        """
        try:
            if model is not None:
                model.load_state_dict(self.model_state, strict=True)
            if optimizer is not None:
                if self.optimizer_state is None:
                    raise ValueError("the checkpoint holds no optimizer state")
                optimizer.load_state_dict(self.optimizer_state)
            if scheduler is not None:
                if self.scheduler_state is None:
                    raise ValueError("the checkpoint holds no scheduler state")
                scheduler.load_state_dict(self.scheduler_state)
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{self.path} does not fit this run: {e}") from e
        for name, gen in (rngs or {}).items():
            if name not in self.rngs:
                raise CheckpointError(f"{self.path} has no state for the random generator {name!r} "
                                      f"(it has {sorted(self.rngs)})")
            try:
                gen.bit_generator.state = self.rngs[name]
            except (KeyError, ValueError, TypeError) as e:
                raise CheckpointError(f"{self.path}: random generator {name!r}: {e}") from e


def _diff(saved: Any, now: Any, prefix: str, out: list[str]) -> None:
    if isinstance(saved, dict) and isinstance(now, dict):
        for k in list(saved) + [k for k in now if k not in saved]:
            name = f"{prefix}{k}"
            if k not in now:
                out.append(f"{name}: {saved[k]!r} in the checkpoint, not set now")
            elif k not in saved:
                out.append(f"{name}: not in the checkpoint, {now[k]!r} now")
            else:
                _diff(saved[k], now[k], name + ".", out)
        return
    same = saved == now
    if isinstance(same, np.ndarray):
        same = bool(same.all()) and np.shape(saved) == np.shape(now)
    if not same:
        out.append(f"{prefix.rstrip('.')}: {saved!r} in the checkpoint, {now!r} now")


def _read(path: Path) -> Checkpoint:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="np") as f:
            metadata = f.metadata() or {}
            tensors = {k: np.array(f.get_tensor(k)) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: not a complete checkpoint file ({e})") from e
    document, digest = metadata.get(PAYLOAD_KEY), metadata.get(CHECKSUM_KEY)
    if document is None or digest is None:
        raise CheckpointError(f"{path}: not a fastconv checkpoint (no {PAYLOAD_KEY!r} metadata)")
    if _checksum(document, tensors) != digest:
        raise CheckpointError(f"{path}: checksum mismatch: the checkpoint is corrupt")
    try:
        payload = json.loads(document)
        if payload.get("format") != "fastconv-checkpoint" or payload.get("version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: unsupported checkpoint format {payload.get('format')!r} "
                                  f"version {payload.get('version')!r} (this fastconv reads version "
                                  f"{FORMAT_VERSION})")
        return Checkpoint(
            path=path, epoch=int(payload["epoch"]), step=int(payload["step"]),
            model_state=OrderedDict((k, _decode(v, tensors)) for k, v in payload["model"].items()),
            optimizer_state=_decode(payload["optimizer"], tensors),
            scheduler_state=_decode(payload["scheduler"], tensors),
            rngs=_decode(payload["rngs"], tensors), metrics=_decode(payload["metrics"], tensors),
            config=_decode(payload["config"], tensors), extra=_decode(payload["extra"], tensors))
    except CheckpointError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: malformed checkpoint ({e})") from e


def latest_checkpoint(directory: _Path) -> Path | None:
    """The newest checkpoint in ``directory`` that is complete and passes its checksum, or
    None if there is none (a ``UserWarning`` names every newer file that was skipped).

    Raises
    ------
    CheckpointError
        ``directory`` does not exist or is not a directory.
    """
    directory = _check_directory(directory)
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise CheckpointError(f"checkpoint directory {str(directory)!r} {what}")
    for p in reversed(list_checkpoints(directory)):
        try:
            _read(p)
        except CheckpointError as e:
            warnings.warn(f"skipping an unreadable checkpoint: {e}", UserWarning, stacklevel=2)
            continue
        return p
    return None


def load_checkpoint(path: _Path) -> Checkpoint:
    """Read and validate a checkpoint.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, or a directory: its :func:`latest_checkpoint`.

    Returns
    -------
    Checkpoint

    Raises
    ------
    CheckpointError
        (a ``ValueError``) a missing path, a directory without a complete checkpoint, a
        truncated, corrupt (checksum) or foreign file.
    """
    path = _check_directory(path, "path")
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path} holds no complete checkpoint (ckpt-*.safetensors)")
        path = latest
    elif not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    return _read(path)


# -- helpers for training loops ---------------------------------------------------------------

def generators_of(obj: Any, prefix: str = "") -> dict[str, np.random.Generator]:
    """The ``numpy.random.Generator`` attributes of ``obj`` (and of its ``sampler``, if it has
    one), by ``prefix + attribute name``: e.g. a BatchIterator's shuffling and augmentation
    generators. With a Module, the generators of all its submodules (a Dropout given its own
    ``rng``), named ``prefix + module name + "." + attribute``."""
    out: dict[str, np.random.Generator] = {}
    if hasattr(obj, "named_modules"):
        for name, m in obj.named_modules():
            for attr, v in vars(m).items():
                if isinstance(v, np.random.Generator):
                    out[f"{prefix}{name}.{attr}" if name else f"{prefix}{attr}"] = v
        return out
    for attr, v in vars(obj).items():
        if isinstance(v, np.random.Generator):
            out[prefix + attr] = v
    sampler = getattr(obj, "sampler", None)
    if sampler is not None and hasattr(sampler, "__dict__"):
        out.update(generators_of(sampler, prefix + "sampler."))
    return out


def global_generator() -> np.random.Generator:
    """fastconv's package-wide generator (:func:`fastconv.manual_seed`'s; dropout without an
    ``rng`` draws from it)."""
    from . import _random

    return _random._rng


class TrainingRun:
    """The checkpointing of an epoch loop (what ``fastconv train --checkpoint/--resume`` runs).

    It keeps the loop's position (completed epochs, steps, the running sums of the current
    epoch), writes checkpoints with :func:`save_checkpoint` and resumes from them so that a
    resumed run repeats an uninterrupted one bit for bit: the data iterator's generators
    (shuffling, augmentation) are saved as they were at the start of the current epoch and
    the batches already trained on are drawn again and skipped (:meth:`begin_epoch`), so the
    epoch's permutation and the augmentation generator come out as before; the other
    generators (fastconv's global one: dropout; any Generator held by a module) are saved as
    they are.

    Parameters
    ----------
    directory : str or os.PathLike
        Where checkpoints are written.
    model, optimizer, scheduler
        The objects trained (``scheduler`` may be None).
    batches : BatchIterator
        The training batches (re-iterated every epoch).
    config : mapping
        What defines the run; a resumed checkpoint must have the same (see
        :meth:`Checkpoint.check_config`).
    every : int, default 1
        :meth:`end_epoch` writes a checkpoint every ``every`` epochs.
    metrics_path : str or os.PathLike, optional
        The run's metrics file (one JSON line per epoch): :meth:`resume` rewrites it
        atomically as it was at the checkpoint (its lines from before the run, then the
        checkpoint's records), so that no epoch appears twice.
    keep : int, default 2
        Checkpoints kept in ``directory``.
    writer : bool, default True
        Whether this process writes (checkpoints, the rewritten metrics file): in a
        distributed run only rank 0 does; every rank resumes from the same files.
    mid_epoch : bool, default True
        Whether a Ctrl-C may stop the loop after a step and checkpoint that position
        (:meth:`deferred_interrupts`, :meth:`save_on_interrupt`). A distributed run passes
        False: its ranks hold different partial sums of the epoch and would have to agree on
        the step to stop at; it resumes from the last epoch's checkpoint instead.
    notes : mapping, optional
        Stored in every checkpoint's ``extra["notes"]`` and not compared on resume (e.g.
        the thread count, which a resumed run may change at the price of bitwise equality).

    Attributes
    ----------
    epoch_done : int
        Completed epochs.
    step : int
        Optimizer steps done.
    totals : dict
        Running sums of the current epoch (see :func:`fastconv.training.train_epoch`).
    metrics : list of dict
        The records of the completed epochs.
    stop_requested : bool
        Set by a Ctrl-C while :meth:`deferred_interrupts` is active.
    """

    #: Test-only (inert unless set): ``FASTCONV_TEST_KILL_AT_STEP=N[:SIGNAL]`` makes the process
    #: send itself SIGNAL (default KILL; e.g. INT) right after optimizer step N of the run.
    KILL_HOOK_VARIABLE = "FASTCONV_TEST_KILL_AT_STEP"

    def __init__(self, directory: _Path, *, model: Any, optimizer: Any, scheduler: Any, batches: Any,
                 config: Mapping[str, Any], every: int = 1, metrics_path: _Path | None = None,
                 keep: int = 2, notes: Mapping[str, Any] | None = None, writer: bool = True,
                 mid_epoch: bool = True) -> None:
        self.directory = _check_directory(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise CheckpointError(f"checkpoint directory {str(self.directory)!r} exists and is not a directory")
        self.every = _check_count(every, "every", 1)
        self.keep = _check_count(keep, "keep", 1)
        self.model, self.optimizer, self.scheduler, self.batches = model, optimizer, scheduler, batches
        self.config = dict(config)
        self.notes = dict(notes or {})
        self.writer = bool(writer)
        self.mid_epoch = bool(mid_epoch)
        self.metrics_path = None if metrics_path is None else Path(metrics_path)
        self.epoch_done, self.step, self.steps_before_epoch = 0, 0, 0
        self.totals: dict[str, Any] = {}
        self.metrics: list[Any] = []
        self.stop_requested = False
        self._consistent = True
        self._saved = False
        #: the checkpoint file written last by this process (None before the first)
        self.last_path: Path | None = None
        self._metrics_prefix = ""
        if self.metrics_path is not None and self.metrics_path.is_file():
            self._metrics_prefix = self.metrics_path.read_text()
        self._data_rngs = generators_of(batches)
        self._data_state = self._data_snapshot()
        self._kill_at = self._kill_hook()

    # -- state ------------------------------------------------------------------------------
    def _data_snapshot(self) -> dict[str, Any]:
        return {k: g.bit_generator.state for k, g in self._data_rngs.items()}

    def _rngs(self) -> dict[str, np.random.Generator]:
        return {"fastconv": global_generator(), **generators_of(self.model, "model.")}

    def save(self) -> Path | None:
        """Write a checkpoint of the current position (after the last completed step); None
        (nothing written) where this process is not the ``writer``."""
        if not self.writer:
            self._saved = True
            return None
        path = save_checkpoint(
            self.directory, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            epoch=self.epoch_done, step=self.step, rngs=self._rngs(), metrics=self.metrics,
            config=self.config, keep=self.keep,
            extra={"totals": self.totals, "data_rngs": self._data_state,
                   "steps_before_epoch": self.steps_before_epoch, "metrics_prefix": self._metrics_prefix,
                   "notes": self.notes})
        self._saved = True
        self.last_path = path
        return path

    def resume(self, source: _Path) -> Checkpoint:
        """Load the latest complete checkpoint of ``source`` (a directory or a file), check its
        config against this run's, and restore everything; returns it.

        Raises
        ------
        CheckpointError
            No complete checkpoint, a different config (naming what differs), state that does
            not fit the model/optimizer/scheduler.
        """
        ckpt = load_checkpoint(source)
        ckpt.check_config(self.config)
        self.last_path = ckpt.path
        extra = ckpt.extra
        missing = sorted({"totals", "data_rngs", "steps_before_epoch", "metrics_prefix"} - set(extra))
        if missing:
            raise CheckpointError(f"{ckpt.path} was not written by a training run (no {missing})")
        ckpt.restore(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, rngs=self._rngs())
        names = sorted(self._data_rngs)
        if sorted(extra["data_rngs"]) != names:
            raise CheckpointError(f"{ckpt.path}: the data iterator's generators differ "
                                  f"({sorted(extra['data_rngs'])} in the checkpoint, {names} now)")
        for k, g in self._data_rngs.items():
            g.bit_generator.state = extra["data_rngs"][k]
        self._data_state = self._data_snapshot()
        self.epoch_done, self.step = ckpt.epoch, ckpt.step
        self.steps_before_epoch = int(extra["steps_before_epoch"])
        self.totals = dict(extra["totals"])
        self.metrics = list(ckpt.metrics)
        self._metrics_prefix = str(extra["metrics_prefix"])
        if self.metrics_path is not None and self.writer:
            self.metrics_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.metrics_path, (self._metrics_prefix + "".join(
                json.dumps(r) + "\n" for r in self.metrics)).encode("utf-8"))
        return ckpt

    # -- the loop ---------------------------------------------------------------------------
    def begin_epoch(self) -> Any:
        """The batches of the next epoch: the data generators' states are recorded (for a
        checkpoint written during the epoch), and the steps of an interrupted epoch that
        were already done are drawn and skipped."""
        import itertools

        self._data_state = self._data_snapshot()
        done = int(self.totals.get("steps", 0))
        self._saved = False
        return self.batches if done == 0 else itertools.islice(self.batches, done, None)

    def step_done(self) -> None:
        """Call after every completed optimizer step (e.g. from ``train_epoch``'s progress):
        counts it and raises KeyboardInterrupt there if a Ctrl-C came in meanwhile."""
        self.step = self.steps_before_epoch + int(self.totals.get("steps", 0))
        self._saved = False
        if self._kill_at is not None and self.step == self._kill_at[0]:
            os.kill(os.getpid(), self._kill_at[1])
        if self.stop_requested:
            raise KeyboardInterrupt

    def end_epoch(self, record: Any, last: bool = False) -> Path | None:
        """Record the completed epoch's metrics; write a checkpoint when the epoch is a multiple
        of ``every``, the ``last`` one, or a stop was requested (then raises KeyboardInterrupt
        after writing)."""
        self.metrics.append(record)
        self.epoch_done += 1
        self.steps_before_epoch = self.step
        self.totals = {}
        self._data_state = self._data_snapshot()
        path = self.save() if self.epoch_done % self.every == 0 or last or self.stop_requested else None
        if self.stop_requested:
            raise KeyboardInterrupt
        return path

    def save_on_interrupt(self) -> Path | None:
        """After a KeyboardInterrupt: write a checkpoint of the position if it is exact (the
        interrupt came between steps) and not written yet; None otherwise."""
        if not self._consistent or self._saved or (self.totals.get("steps") and not self.mid_epoch):
            return None
        return self.save()

    def deferred_interrupts(self) -> Any:
        """A context manager: a first Ctrl-C (SIGINT) only sets :attr:`stop_requested`, so the
        loop stops after the step in progress (:meth:`step_done`) or at the end of the epoch;
        a second one interrupts at once (no checkpoint is written then)."""
        import contextlib
        import signal as _signal
        import threading

        @contextlib.contextmanager
        def manager():
            if not self.mid_epoch or threading.current_thread() is not threading.main_thread():
                self._consistent = False  # an interrupt may land anywhere
                yield self
                return

            def handler(signum, frame):
                if self.stop_requested:
                    self._consistent = False
                    raise KeyboardInterrupt
                self.stop_requested = True

            previous = _signal.signal(_signal.SIGINT, handler)
            try:
                yield self
            finally:
                _signal.signal(_signal.SIGINT, previous)

        return manager()

    @classmethod
    def _kill_hook(cls) -> tuple[int, int] | None:
        import signal as _signal

        value = os.environ.get(cls.KILL_HOOK_VARIABLE)
        if not value:
            return None
        step, _, name = value.partition(":")
        return int(step), int(getattr(_signal, "SIG" + (name or "KILL").upper()))


__all__ = ["Checkpoint", "CheckpointError", "TrainingRun", "atomic_write_bytes", "checkpoint_name",
           "generators_of", "global_generator", "latest_checkpoint", "list_checkpoints", "load_checkpoint",
           "save_checkpoint"]
