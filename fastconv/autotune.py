"""Measured convolution algorithm choice: modes, the plan file, and tuning a model ahead.

``algorithm="auto"`` (every :class:`fastconv.nn.Conv2d` by default) times the eligible
algorithms (direct, im2col, Winograd) once per (operation, geometry, dtype, thread count,
kernel ISA) key, keeps the winner for the rest of the process and persists it in a
per-machine plan file (see :mod:`fastconv.functional._autotune` for the rules). The
static table stays the choice unless another algorithm is clearly (10 %) faster.

* :func:`set_autotune` / ``FASTCONV_AUTOTUNE``: ``"measure"`` (default), ``"cache"``
  (cached plans only, no measuring), ``"off"`` (the static table; bitwise the choices of
  earlier versions).
* :func:`plans`: the plans in use; :func:`plan_cache_path`, ``FASTCONV_PLAN_CACHE``.
* :func:`tune_model` (CLI ``fastconv tune``): measure a model's layers ahead of training.

Reproducibility: algorithms agree to rounding, not bitwise. A key's choice is made once per
process and then reused from the plan file, so a run is self-consistent and later runs on
the same machine repeat it; for bitwise-identical results on fresh machines or caches use
``"off"`` (the test suite does), or ``"cache"`` with a fixed plan file.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ._typing import DTypeLike
from .functional import _autotune as _at
from .functional._autotune import (
    MODES,
    clear_plans,
    cpu_model,
    cpu_signature,
    get_autotune,
    plan_cache_path,
    plans,
    set_autotune,
)


def tune_model(model: Any, input_shape: tuple[int, ...], dtype: DTypeLike = np.float32,
               training: bool = True) -> list[dict]:
    """Measure the algorithms of every convolution ``model`` runs on ``input_shape``.

    Runs one forward pass (and with ``training`` a backward pass) on random data under
    ``set_autotune("measure")`` at the current thread count, so every key gets a plan in
    memory and in the plan file; then restores the mode. The model's parameters are not
    changed (gradients accumulated by the backward pass are zeroed again).

    Parameters
    ----------
    model : fastconv.nn.Module
    input_shape : tuple of int, (N, C, H, W)
    dtype : numpy dtype, float32 or float64 (the model's)
    training : bool
        Also tune the backward pass (the model in training mode); otherwise eval mode.

    Returns
    -------
    list of dict
        One per key, in first-use order: the plan entry plus ``key``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 4 or min(shape) < 1:
        raise ValueError(f"input_shape must be 4 positive ints (N, C, H, W), got {input_shape!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    saved_mode = _at._mode
    was_training = getattr(model, "training", True)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    state = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    grads = [(p, None if p.grad is None else p.grad.copy()) for p in model.parameters()]
    record: list[str] = []
    _at._record = record
    try:
        _at.set_autotune("measure")
        model.train(training)
        y = model.forward(x)
        if training:
            model.backward(np.ones_like(y) / y.size)
    finally:
        _at._record = None
        _at._mode = saved_mode
        model.train(was_training)
        model.load_state_dict(state)  # BatchNorm statistics as they were
        for p, gr in grads:
            if gr is not None and p.grad is not None:
                p.grad[...] = gr
    known = plans()
    seen: list[str] = []
    for k in record:
        if k not in seen:
            seen.append(k)
    return [dict(known.get(k, {}), key=k) for k in seen]


def format_plans(rows: list[dict]) -> str:
    """A text table of :func:`tune_model`'s rows: key, choice, table's choice, best times (us)."""
    lines = []
    for r in rows:
        times = "  ".join(f"{a} {t:.1f}" for a, t in sorted(r.get("times_us", {}).items()))
        mark = "" if r.get("algorithm") == r.get("table", r.get("algorithm")) else "  (table: %s)" % r.get("table")
        lines.append(f"{r.get('algorithm', '?'):<9} {r['key']}{mark}\n          best us: {times or '(cached)'}")
    return "\n".join(lines)


__all__ = ["MODES", "set_autotune", "get_autotune", "plans", "clear_plans", "plan_cache_path", "cli_tune",
           "cpu_signature", "cpu_model", "tune_model", "format_plans"]


def cli_tune(args: Any, train_defaults: dict) -> int:
    """``fastconv tune``: tune one training step of ``args.model`` and print the plans."""
    from ._parallel import get_num_threads, set_num_threads
    from .models import MODELS

    batch = args.batch_size or train_defaults[args.model]["batch_size"]
    if args.threads:
        set_num_threads(args.threads)
    if args.clear:
        clear_plans(memory=True, file=True)
    dtype = np.dtype(args.dtype)
    model = MODELS[args.model](rng=np.random.default_rng(0), dtype=dtype)
    import time

    t0 = time.perf_counter()
    rows = tune_model(model, (batch, int(getattr(model, "config", {}).get("in_channels", 1)), 28, 28), dtype)
    seconds = time.perf_counter() - t0
    print(f"plans for {args.model}, batch {batch}, {args.dtype}, {get_num_threads()} thread(s) "
          f"(measured on 1 thread, CPU time; {seconds:.1f} s):")
    print(format_plans(rows))
    changed = sum(1 for r in rows if r.get("table") and r.get("algorithm") != r["table"])
    print(f"{len(rows)} plans, {changed} differ from the static table; plan file {plan_cache_path()}")
    return 0
