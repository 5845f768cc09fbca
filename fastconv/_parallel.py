"""Thread count for the kernels, and keeping BLAS single-threaded while they run.

The kernels parallelise over images with OpenMP and call GEMM from inside those parallel
loops; a multithreaded BLAS there would oversubscribe the cores (OpenBLAS even warns it
may hang), so every kernel call that may reach BLAS runs under :func:`blas_single_thread`.
"""
from __future__ import annotations

import threading
from typing import Any

from ._kernels import _openmp_helpers

_explicit_num_threads: int | None = None
# Per-Python-thread override set by num_threads(): several threads (Dask's pool, a server's
# request threads) may each run kernels with their own count without racing on the global.
class _ThreadSettings(threading.local):
    """Per-Python-thread settings. ``n`` defaults at class level: a thread that never set it
    reads None without the AttributeError that getattr(..., default) raises and catches
    (~1.4 us, on every kernel call's thread-count lookup)."""

    n: "int | None" = None


_local = _ThreadSettings()


def openmp_enabled() -> bool:
    """Return True if the kernels were built with OpenMP (otherwise they run serially)."""
    return _openmp_helpers.openmp_enabled()


# Fixed at build time; read once (every kernel call asks for the thread count).
_OPENMP = bool(_openmp_helpers.openmp_enabled())


def get_num_threads() -> int:
    """Number of threads the kernels use.

    The value set by :func:`set_num_threads` if any; otherwise OpenMP's default, which
    follows ``OMP_NUM_THREADS``, ``threadpoolctl.threadpool_limits(user_api="openmp")`` and
    the CPUs available to the process. Always 1 when built without OpenMP.
    """
    if not _OPENMP:
        return 1
    local: int | None = _local.n
    if local is not None:
        return local
    if _explicit_num_threads is not None:
        return _explicit_num_threads
    return max(1, int(_openmp_helpers.omp_max_threads()))


def _local_num_threads() -> int | None:
    """This Python thread's own setting (:class:`num_threads`, AdaptiveThreads), or None."""
    return _local.n


def _set_local_num_threads(n: int | None) -> None:
    """Set (None: clear) this Python thread's own setting; callers validate ``n``."""
    _local.n = n


def _check_thread_count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) and not hasattr(n, "__index__"):
        raise TypeError(f"n must be a positive int or None, got {type(n).__name__}")
    n = int(n.__index__()) if not isinstance(n, int) else n
    if n < 1:
        raise ValueError(f"n must be a positive int or None, got {n}")
    return n


class num_threads:
    """Context manager: the kernels called from *this* Python thread use ``n`` threads.

    Unlike :func:`set_num_threads` (process-wide), the setting is thread-local, so
    concurrent Python threads (a Dask thread pool, request handlers) can each choose their
    own count; it nests, and on exit the previous setting of the thread comes back.

    Parameters
    ----------
    n : int or None
        A positive thread count; None leaves this thread's current setting unchanged.

    Examples
    --------
    >>> import fastconv
    >>> with fastconv.num_threads(1):
    ...     fastconv.get_num_threads()
    1
    """

    def __init__(self, n: int | None) -> None:
        self.n = None if n is None else _check_thread_count(n)
        self._saved: list[int | None] = []

    def __enter__(self) -> num_threads:  # noqa: PYI034 (typing.Self needs Python 3.11)
        self._saved.append(_local.n)
        if self.n is not None:
            _local.n = self.n
        return self

    def __exit__(self, *exc: object) -> None:
        _local.n = self._saved.pop()


def set_num_threads(n: int | None) -> None:
    """Set the number of threads the kernels use; ``None`` restores the default.

    Parameters
    ----------
    n : int or None
        A positive thread count. Results are deterministic for a fixed thread count.
    """
    global _explicit_num_threads
    _explicit_num_threads = None if n is None else _check_thread_count(n)


class _BlasPinner:
    """Reference-counted pin of every loaded BLAS to one thread.

    Built once (the library scan costs ~1 ms); entering costs a few microseconds. Nested and
    concurrent callers (several Python threads in kernels at once) share one pin: the first
    in saves and sets the BLAS thread counts, the last out restores them.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = []
        self._controllers = None

    def _blas_controllers(self):
        if self._controllers is None:
            try:
                from threadpoolctl import ThreadpoolController

                self._controllers = [
                    lc for lc in ThreadpoolController().lib_controllers if lc.user_api == "blas"
                ]
            except Exception:  # noqa: BLE001 - without threadpoolctl we cannot pin; run as is
                self._controllers = []
        return self._controllers

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = []
                for lc in self._blas_controllers():
                    n = lc.num_threads
                    if n != 1:
                        lc.set_num_threads(1)
                        self._saved.append((lc, n))
            self._depth += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lc, n in self._saved:
                    lc.set_num_threads(n)
                self._saved = []
        return False


_blas_pinner = _BlasPinner()


def blas_single_thread() -> _BlasPinner:
    """Context manager in which BLAS runs single-threaded (safe to call from inside prange)."""
    return _blas_pinner
