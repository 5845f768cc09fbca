"""Measured algorithm choice for ``algorithm="auto"`` (the role of cuDNN's benchmark mode
and FFTW's wisdom).

For a key (operation, geometry, dtype, thread count, kernel ISA in use) the eligible
algorithms are timed once, the winner is kept in memory for the rest of the process and
persisted in a per-machine plan file, so later runs make the same choice without
measuring. The static table (:func:`fastconv.functional.conv.table_algorithm`) stays the
incumbent: another algorithm replaces it only when it is clearly faster (by
:data:`MARGIN` in the best run *and* in the median of interleaved rounds), so noise on a
busy machine rarely moves a choice away from the table.

Modes (:func:`set_autotune`, environment variable ``FASTCONV_AUTOTUNE``):

* ``"measure"`` (default): cached plan if there is one, else measure once and cache it.
* ``"cache"``: cached plans only (from the plan file or this process), never measure;
  keys without a plan use the table. A fixed plan file then gives fixed choices.
* ``"off"``: the static table only (the choices of fastconv before autotuning).

Determinism: the algorithms agree to rounding, not bitwise. Within a process a key's
choice is made once and never changes, so a run is self-consistent; with a plan file the
next runs reuse it. Runs that must be bitwise reproducible across machines or fresh
caches use ``"off"`` (the test suite does) or ``"cache"`` with a fixed plan file.

The plan file is ``$FASTCONV_PLAN_CACHE`` if set, else
``$XDG_CACHE_HOME/fastconv/plans-<signature hash>.json`` (``~/.cache`` by default). It is
JSON (never executed), written atomically (:func:`fastconv._atomic.atomic_write`) after
merging with what other processes wrote (under a lock file where ``fcntl`` exists). A
file that cannot be read, or was written for another CPU, fastconv version or format, is
ignored with a warning and replaced on the next write.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .._validation import choice_error
from .._version import __version__

#: Modes of :func:`set_autotune`; environment spellings map onto them.
MODES = ("off", "cache", "measure")
_ALIASES = {"off": "off", "0": "off", "false": "off", "no": "off",
            "cache": "cache",
            "measure": "measure", "on": "measure", "1": "measure", "true": "measure", "yes": "measure"}
ENV_MODE = "FASTCONV_AUTOTUNE"
ENV_CACHE = "FASTCONV_PLAN_CACHE"
DEFAULT_MODE = "measure"

#: A challenger must beat the table's choice by this fraction (best run and round median).
MARGIN = 0.10
#: Interleaved rounds (each candidate runs ``reps`` times per round).
ROUNDS = 3
#: Time budget of one key's measurement after the first run of each candidate (seconds).
BUDGET_S = 0.15
MAX_REPS = 10

FILE_FORMAT = "fastconv-plans"
FILE_VERSION = 1
OPS = ("forward", "grad_input", "grad_weight")
ALGORITHMS = ("direct", "im2col", "winograd")
#: Plans that are not a convolution's algorithm: op -> the "algorithm" values its entries
#: hold (the filters' measured cost model, functional/_fft.py; grad_weight's AVX2 tile or
#: portable kernel, functional/conv.py; see :func:`cached_plan`).
OTHER_OPS = {"filter-cost": ("cost-model",), "wgrad-tile": ("avx2-tile", "portable")}

_lock = threading.RLock()
_mode: str | None = None           # set_autotune's value; None: the environment's
_memo: dict[tuple, tuple[str, str]] = {}  # (op, geometry, dtype, threads, isa) -> (algorithm, key)
_record: list[str] | None = None     # keys used while recording (tune_model)
_file_plans: dict[str, dict] = {}    # key string -> entry, from the plan file
_new_plans: dict[str, dict] = {}     # key string -> entry, measured by this process
_loaded_path: Path | None = None
_other_memo: dict[str, dict] = {}  # OTHER_OPS key string -> entry in use (cached_plan)


# --------------------------------------------------------------------------------------
# Mode
# --------------------------------------------------------------------------------------
def _parse_mode(value: Any, name: str) -> str:
    if value is True:
        return "measure"
    if value is False:
        return "off"
    if isinstance(value, str) and value.strip().lower() in _ALIASES:
        return _ALIASES[value.strip().lower()]
    raise choice_error(name, MODES, value, " (or True/False, 1/0, on/off)")


def set_autotune(mode: str | bool | None) -> None:
    """Choose how ``algorithm="auto"`` picks convolution algorithms.

    Parameters
    ----------
    mode : {"measure", "cache", "off"}, bool or None
        ``"measure"`` (or True): time the eligible algorithms once per key and cache the
        winner (memory and plan file). ``"cache"``: use cached plans only, never measure.
        ``"off"`` (or False): the static table. None: back to ``$FASTCONV_AUTOTUNE``
        (default ``"measure"``).

    Notes
    -----
    Algorithms agree to rounding, not bitwise: for bitwise reproducibility across fresh
    machines use ``"off"``, or ``"cache"`` with a fixed plan file. Within one process a
    key's choice never changes.
    """
    global _mode
    _mode = None if mode is None else _parse_mode(mode, "mode")


def get_autotune() -> str:
    """The mode in force: :func:`set_autotune`'s, else ``$FASTCONV_AUTOTUNE``'s, else
    ``"measure"``. An invalid environment value raises ValueError listing the choices."""
    if _mode is not None:
        return _mode
    env = os.environ.get(ENV_MODE)
    if env is None or env.strip() == "":
        return DEFAULT_MODE
    return _parse_mode(env, ENV_MODE)


# --------------------------------------------------------------------------------------
# Machine signature and plan file
# --------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model string (``/proc/cpuinfo`` on Linux, else ``platform``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _isa_available() -> str:
    from .._kernels import _direct

    return "avx512" if _direct.AVX512_AVAILABLE else "avx2" if _direct.AVX2_AVAILABLE else "portable"


def _isa_in_use() -> str:
    from .._kernels import _direct

    return _direct.kernel_isa()


#: Bumped whenever a kernel change can change which algorithm wins a key: a plan file
#: measured with older kernels is then another file (the signature's hash), not reused.
#: 2: the AVX2 pixel grad_weight and the products-and-scatter grad_input.
#: 3: the AVX2 transposed tile for stride-2 grad_input (direct, 3-wide kernels).
KERNEL_REVISION = 3


def cpu_signature() -> str:
    """What a plan file is valid for: CPU model, machine, kernel ISA available, fastconv
    version and kernel revision (the thread count and ISA in use are part of every plan's
    key)."""
    return (f"{cpu_model()} | {platform.machine()} | {_isa_available()} | fastconv {__version__}"
            f" r{KERNEL_REVISION}")


def plan_cache_path() -> Path:
    """The plan file: ``$FASTCONV_PLAN_CACHE``, else
    ``$XDG_CACHE_HOME/fastconv/plans-<hash of cpu_signature()>.json``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(cpu_signature().encode()).hexdigest()[:16]
    return Path(base) / "fastconv" / f"plans-{digest}.json"


def _entry_ok(key: str, e: Any) -> bool:
    if isinstance(e, dict) and e.get("op") in OTHER_OPS:
        return isinstance(key, str) and e.get("algorithm") in OTHER_OPS[e["op"]]
    return (isinstance(e, dict) and e.get("op") in OPS and e.get("algorithm") in ALGORITHMS
            and isinstance(e.get("times_us", {}), dict) and isinstance(key, str))


def _read_file(path: Path) -> dict[str, dict]:
    """The valid entries of the plan file at ``path`` ({} with a warning when unusable)."""
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        warnings.warn(f"fastconv: ignoring unreadable plan file {path} ({e}); it will be rewritten",
                      RuntimeWarning, stacklevel=3)
        return {}
    problem = None
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        problem = "not a fastconv plan file"
    elif doc.get("version") != FILE_VERSION:
        problem = f"format version {doc.get('version')!r}, expected {FILE_VERSION}"
    elif doc.get("signature") != cpu_signature():
        problem = f"written for {doc.get('signature')!r}, this is {cpu_signature()!r}"
    elif not isinstance(doc.get("plans"), dict):
        problem = "no 'plans' table"
    if problem:
        warnings.warn(f"fastconv: ignoring plan file {path}: {problem}; it will be rewritten",
                      RuntimeWarning, stacklevel=3)
        return {}
    entries = {k: e for k, e in doc["plans"].items() if _entry_ok(k, e)}
    if len(entries) != len(doc["plans"]):
        warnings.warn(f"fastconv: ignoring {len(doc['plans']) - len(entries)} malformed plan(s) in {path}",
                      RuntimeWarning, stacklevel=3)
    return entries


def _ensure_loaded() -> None:
    """Load the plan file once per path (set_autotune / env changes of the path reload)."""
    global _loaded_path
    path = plan_cache_path()
    if _loaded_path == path:
        return
    with _lock:
        if _loaded_path == path:
            return
        file_entries = _read_file(path)
        _file_plans.clear()
        _file_plans.update(file_entries)
        _loaded_path = path


class _FileLock:
    """An exclusive lock on ``<plan file>.lock`` (no-op where fcntl is missing)."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
        return False


def _save(new: Mapping[str, dict]) -> Path | None:
    """Merge ``new`` entries into the plan file (entries already on disk win: the first
    process to measure a key decides it for everyone after). Returns the path, or None
    (with a warning) if it cannot be written."""
    from .._atomic import atomic_write

    path = plan_cache_path()
    try:
        with _FileLock(path):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a bad file was reported when loaded
                merged = _read_file(path)
            for k, e in new.items():
                merged.setdefault(k, e)
            doc = {"format": FILE_FORMAT, "version": FILE_VERSION, "signature": cpu_signature(),
                   "fastconv": __version__, "plans": dict(sorted(merged.items()))}
            data = json.dumps(doc, indent=1).encode()
            atomic_write(path, lambda f: f.write(data), suffix=".tmp")
        return path
    except OSError as e:
        warnings.warn(f"fastconv: cannot write plan file {path} ({e}); plans stay in memory",
                      RuntimeWarning, stacklevel=3)
        return None


def clear_plans(memory: bool = True, file: bool = False) -> None:
    """Forget the plans in memory (they are re-read from the plan file on next use) and,
    with ``file=True``, delete the plan file."""
    global _loaded_path
    with _lock:
        if memory:
            _memo.clear()
            _other_memo.clear()
            _file_plans.clear()
            _new_plans.clear()
            _loaded_path = None
        if file:
            try:
                plan_cache_path().unlink()
            except FileNotFoundError:
                pass


def plans() -> dict[str, dict]:
    """The plans known to this process: key string -> entry (``op``, ``algorithm``,
    ``table`` (the static table's choice), ``times_us`` (best run per candidate),
    ``source`` ("measured" here, or "file")). Loads the plan file if not yet loaded."""
    _ensure_loaded()
    with _lock:
        out = {k: dict(e, source="file") for k, e in _file_plans.items()}
        out.update((k, dict(e, source="measured")) for k, e in _new_plans.items())
        return out


# --------------------------------------------------------------------------------------
# Keys and measurement
# --------------------------------------------------------------------------------------
def key_string(g: Any, dtype: Any, op: str, n_threads: int, isa: str | None = None) -> str:
    """The plan key of one operation: readable, stable across processes."""
    isa = _isa_in_use() if isa is None else isa
    return (f"{op} {np.dtype(dtype).name} t{n_threads} {isa} "
            f"x{g.N}x{g.C_in}x{g.H}x{g.W} w{g.C_out}x{g.C_in // g.groups}x{g.kh}x{g.kw} "
            f"s{g.sh},{g.sw} p{g.pad_top},{g.pad_bottom},{g.pad_left},{g.pad_right} "
            f"d{g.dh},{g.dw} g{g.groups}")


def _clock(n_threads: int) -> Callable[[], int]:
    """One thread: this thread's CPU time (another process taking the core does not count);
    several: wall time."""
    return time.thread_time_ns if n_threads <= 1 else time.perf_counter_ns


def time_runs(run: Callable[[], object], reps: int, n_threads: int) -> list[float]:
    """Seconds of ``reps`` calls of ``run``. The default timer; tests replace :data:`timer`."""
    clock = _clock(n_threads)
    ts = []
    for _ in range(reps):
        t0 = clock()
        run()
        ts.append((clock() - t0) * 1e-9)
    return ts


#: ``timer(algorithm, run, reps, n_threads) -> list of seconds``; replaceable (tests).
timer: Callable[[str, Callable[[], object], int, int], list[float]] = \
    lambda algorithm, run, reps, n_threads: time_runs(run, reps, n_threads)


def measure(candidates: Mapping[str, Callable[[], object]], incumbent: str, n_threads: int,
            rounds: int = ROUNDS, budget_s: float = BUDGET_S) -> tuple[str, dict[str, float]]:
    """Time ``candidates`` (name -> zero-argument run) in interleaved rounds and return
    (winner, best seconds per candidate). ``incumbent`` (the table's choice) wins unless
    another is faster by :data:`MARGIN` both in its best run and in the median of its
    per-round bests."""
    names = list(candidates)
    first = {a: min(timer(a, candidates[a], 1, n_threads)) for a in names}  # also a warm-up
    per_round = max(sum(first.values()), 1e-7) * rounds
    reps = int(max(1, min(MAX_REPS, budget_s // per_round)))
    rounds_best: dict[str, list[float]] = {a: [] for a in names}
    for _ in range(rounds):
        for a in names:
            rounds_best[a].append(min(timer(a, candidates[a], reps, n_threads)))
    best = {a: min(min(v), first[a]) for a, v in rounds_best.items()}
    median = {a: float(np.median(v)) for a, v in rounds_best.items()}
    winner = incumbent
    for a in names:
        if a == winner:
            continue
        if (best[a] < (1 - MARGIN) * best[winner] and median[a] < (1 - MARGIN) * median[winner]):
            winner = a
    return winner, best


def _measure_one_thread(candidates: Mapping[str, Callable[[], object]],
                        incumbent: str) -> tuple[str, dict[str, float]]:
    """:func:`measure` with the kernels on one thread, timed in that thread's CPU time.

    Wall time of a parallel region on a shared machine measures the other processes as
    much as the algorithm (a 2-thread run waits for whichever thread the OS runs late:
    5-100x spells here), and would be persisted; one thread's CPU time is not inflated by
    another process taking a core. The ranking is assumed to carry over to the thread
    count of the key (every algorithm splits images or rows evenly between threads)."""
    from .. import _parallel

    with _parallel.num_threads(1):  # thread-local: other Python threads keep their counts
        return measure(candidates, incumbent, 1)


def choose(g: Any, dtype: Any, op: str, n_threads: int, table_choice: str,
           eligible: Sequence[str], make_runs: Callable[[Sequence[str]], Mapping[str, Callable]]) -> str:
    """The algorithm for one key under the current mode (the conv module's hook)."""
    mode = get_autotune()
    if mode == "off" or len(eligible) < 2:
        return table_choice
    isa = _isa_in_use()
    mkey = (op, g, np.dtype(dtype).name, n_threads, isa)
    hit = _memo.get(mkey)
    if hit is not None:
        if _record is not None:
            _record.append(hit[1])
        return hit[0]
    _ensure_loaded()
    k = key_string(g, dtype, op, n_threads, isa)
    if _record is not None:
        _record.append(k)
    with _lock:
        hit = _memo.get(mkey)
        if hit is not None:
            return hit[0]
        e = _new_plans.get(k) or _file_plans.get(k)
        if e is not None and e["algorithm"] in eligible:
            algo = e["algorithm"]
        elif mode == "measure":
            winner, best = _measure_one_thread(make_runs(eligible), table_choice)
            e = {"op": op, "algorithm": winner, "table": table_choice,
                 "times_us": {a: round(t * 1e6, 2) for a, t in best.items()},
                 "timing": "1 thread, CPU time"}
            _new_plans[k] = e
            _save({k: e})
            algo = winner
        else:
            return table_choice  # "cache" without a plan: not memoised (a later "measure" measures)
        _memo[mkey] = (algo, k)
        return algo


def cached_plan(key: str, measure_entry: Callable[[], dict]) -> dict | None:
    """The plan entry of a non-convolution key (an :data:`OTHER_OPS` op) under the current
    mode: None under "off" (or "cache" without a plan); else this process's or the plan
    file's entry, measured once by ``measure_entry()`` in "measure" mode (and persisted).
    :func:`plans` lists it; :func:`clear_plans` forgets it."""
    mode = get_autotune()
    if mode == "off":
        return None
    hit = _other_memo.get(key)
    if hit is not None:
        return hit
    _ensure_loaded()
    with _lock:
        hit = _other_memo.get(key)
        if hit is not None:
            return hit
        e = _new_plans.get(key) or _file_plans.get(key)
        if e is None:
            if mode != "measure":
                return None
            e = measure_entry()
            _new_plans[key] = e
            _save({key: e})
        _other_memo[key] = e
        return e
