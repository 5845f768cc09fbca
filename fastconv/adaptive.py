"""Adapting the kernels' thread count to a busy machine during training.

On a 2-core machine with one other busy process, every OpenMP parallel region waits for
the thread the OS runs late: a 2-thread LeNet-5 epoch went 4x slower while one thread would
have lost little. :class:`AdaptiveThreads` is a ``progress`` callback for
:func:`fastconv.training.train_epoch` (or any loop that calls it after each step): it
times the steps, and every ``probe_every`` steps tries the neighbouring thread count for
``probe_steps`` steps; it moves there only if that is faster by ``gain`` in mean step time
(the probe against every step since the last decision, so the slow spells of a busy
machine count as they cost; the ``settle`` steps after each change are not counted: the
first steps after a change of thread count ran 2-3x slow here), so noise does not make it
flip back and forth.

Results depend on the thread count (per-thread partial sums are reduced in a fixed order
per thread count), so an adaptive run is not bitwise reproducible: it is opt-in, for runs
where speed matters more than bitwise-identical reruns. Fixed-thread runs are unchanged.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from ._parallel import get_num_threads, set_num_threads


class AdaptiveThreads:
    """Pick the faster thread count while training, by measuring step times.

    Parameters
    ----------
    max_threads : int, optional
        The most threads to use (default: the current :func:`fastconv.get_num_threads`).
    start_threads : int
        The count of the first steps (default 1: a step on one thread is at most ~2x slow
        on a quiet machine, and the first probe soon tries more, while a 2-thread step on
        a busy one was 50-100x slow here).
    probe_every : int
        Steps between probes of the neighbouring thread count (the first probe comes as
        soon as ``probe_steps`` steps are timed; each failed probe doubles the interval,
        up to 16x, and waits at least 19x the failed probe's time, so failed probes cost
        at most ~5 % of the run; a switch resets it).
    probe_steps : int
        Steps timed at the probed count (after ``settle`` untimed ones).
    settle : int
        Steps not timed after each change of thread count.
    gain : float in [0, 1)
        How much faster (fraction of the median step time) the probed count must be to
        switch to it.
    then : callable, optional
        Another ``progress(*args)`` callback, called after this one.
    clock : callable
        Seconds (default ``time.perf_counter``; tests pass a fake).

    Attributes
    ----------
    threads : int
        The thread count in use.
    switches : list of (step, from_threads, to_threads)
    """

    def __init__(self, max_threads: int | None = None, *, start_threads: int = 1, probe_every: int = 50, probe_steps: int = 6,
                 settle: int = 2, gain: float = 0.15, then: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.perf_counter):
        for name, v, lo in (("probe_every", probe_every, 1), ("probe_steps", probe_steps, 1),
                            ("settle", settle, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if max_threads is None:
            max_threads = get_num_threads()
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise ValueError(f"max_threads must be a positive int or None, got {max_threads!r}")
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 <= gain < 1:
            raise ValueError(f"gain must be a number in [0, 1), got {gain!r}")
        if probe_every <= probe_steps + settle:
            raise ValueError(f"probe_every ({probe_every}) must be larger than probe_steps + settle "
                             f"({probe_steps} + {settle})")
        self.max_threads = max_threads
        self.probe_every, self.probe_steps, self.gain = probe_every, probe_steps, float(gain)
        self.then, self.clock, self.settle = then, clock, settle
        if isinstance(start_threads, bool) or not isinstance(start_threads, int) \
                or not 1 <= start_threads <= max_threads:
            raise ValueError(f"start_threads must be an int in [1, max_threads={max_threads}], got {start_threads!r}")
        self.threads = start_threads
        self.switches: list[tuple[int, int, int]] = []
        self._step = 0
        self._last: float | None = None
        self._skip = settle + 1    # steps not to time (after a change; the first step)
        self._recent: list[float] = []  # step times at self.threads since the last decision
        self._probe: int | None = None  # thread count being probed
        self._probe_times: list[float] = []
        self._since_probe = 0
        self._down = False
        self._interval = 0          # steps until the next probe: the first comes early
        self._probe_spent = 0.0
        self._probes = 0
        self._quiet_until = float("-inf")
        set_num_threads(self.threads)

    def start(self) -> None:
        """Mark the start of the first step (else the first step is not timed)."""
        self._last = self.clock()
        self._skip = max(0, self._skip - 1)

    def _set(self, n: int) -> None:
        set_num_threads(n)
        self._skip = self.settle

    def __call__(self, *args: Any) -> None:
        """Call after each step (``train_epoch``'s ``progress`` signature is accepted)."""
        now = self.clock()
        dt = None if self._last is None or self._skip else now - self._last
        self._skip = max(0, self._skip - 1)
        self._step += 1
        if self._probe is None:
            if dt is not None:
                self._recent = (self._recent + [dt])[-self.probe_every:]
            self._since_probe += 1
            need = self.probe_steps if self._probes else min(2, self.probe_steps)  # first probe early
            if self._since_probe >= self._interval and len(self._recent) >= need and now >= self._quiet_until:
                self._probes += 1
                # down from the top, up from 1, in between alternately down and up
                self._down = not self._down
                down = self.threads == self.max_threads or (self.threads > 1 and self._down)
                alt = self.threads - 1 if down else self.threads + 1
                if alt <= self.max_threads and alt != self.threads:
                    self._probe, self._probe_times, self._probe_spent = alt, [], 0.0
                    self._set(alt)
                self._since_probe = 0
        else:
            if dt is not None:
                self._probe_times.append(dt)
            cur: float = statistics.fmean(self._recent)
            if self._last is not None:
                self._probe_spent += now - self._last  # settle steps included
            # a probe that can no longer win ends at once (on a busy machine a probed
            # 2-thread step can cost 50-100 one-thread steps)
            hopeless = self._probe_spent > (4 * self.settle + self.probe_steps) * cur
            if hopeless or len(self._probe_times) >= self.probe_steps:
                alt_time = statistics.fmean(self._probe_times) if self._probe_times else float("inf")
                if not hopeless and alt_time < (1 - self.gain) * cur:
                    self.switches.append((self._step, self.threads, self._probe))
                    self.threads = self._probe
                    self._recent = list(self._probe_times)
                    set_num_threads(self.threads)  # already running at it: keep timing
                    self._interval = self.probe_every
                else:  # back, and probe less often while probes fail (up to 16x)
                    self._set(self.threads)
                    self._recent = []
                    self._interval = min(max(2 * self._interval, self.probe_every), 16 * self.probe_every)
                    # and failed probes take at most ~5 % of the time
                    self._quiet_until = now + 19 * self._probe_spent
                self._probe = None
        if self.then is not None:
            self.then(*args)
        self._last = self.clock()

    def close(self) -> None:
        """Restore the default thread count (:func:`fastconv.set_num_threads` ``(None)``)."""
        set_num_threads(None)


__all__ = ["AdaptiveThreads"]
