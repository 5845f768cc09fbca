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

Besides the scheduled probes, a clear rise of the step time (the median of the last
``probe_steps`` steps over ``1 / (1 - gain)`` times the median after the last decision: a
competitor arrived) probes one thread fewer at once (unless failed probes' quiet time
runs), so scheduled probes down from the top count are only a rare backstop. A probe that is slower on each of its first two timed
steps ends there (on a quiet machine a probe of one thread instead of two costs ~4 steps),
and steps during which the autotuner measured a new plan (the first step at a new thread
count, with ``FASTCONV_AUTOTUNE=measure``) are not timed.

Results depend on the thread count (per-thread partial sums are reduced in a fixed order
per thread count), so an adaptive run is not bitwise reproducible. ``fastconv train``
uses it by default (``--threads auto``); ``--threads N`` (or ``OMP_NUM_THREADS``) fixes
the count and gives reproducible results. Library loops (:func:`fastconv.training.train_epoch`)
never adapt unless given one as ``progress``.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from ._parallel import _local_num_threads, _set_local_num_threads, get_num_threads
from .functional import _autotune


def _measured() -> int:
    """A count that changes whenever the autotuner measures a new plan."""
    return len(_autotune._new_plans)


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
        at most ~5 % of the run; a switch resets it). At ``max_threads`` the scheduled
        probes down come at least ``8 * probe_every`` steps apart (a rise of the step time
        probes at once).
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
    probe_log : list of (step, probed_threads, probe_mean_s, current_mean_s, outcome)
        Every finished probe; outcome is "switch", "slower", "losing" (ended after two
        slower steps) or "hopeless" (ended as it could no longer win).
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
        self.probe_log: list[tuple[int, int, float, float, str]] = []
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
        self._baseline: float | None = None  # median step time after the last decision
        self._measured = _measured()
        # The calling thread's own count (thread-local, as fastconv.num_threads): other Python
        # threads keep theirs, and close() gives back this thread's previous setting.
        self._saved_local = _local_num_threads()
        _set_local_num_threads(self.threads)

    def start(self) -> None:
        """Mark the start of the first step (else the first step is not timed)."""
        self._last = self.clock()
        self._skip = max(0, self._skip - 1)

    def _set(self, n: int) -> None:
        _set_local_num_threads(n)
        self._skip = self.settle

    def __call__(self, *args: Any) -> None:
        """Call after each step (``train_epoch``'s ``progress`` signature is accepted)."""
        now = self.clock()
        step_time = None if self._last is None else now - self._last
        dt = None if self._skip else step_time
        self._skip = max(0, self._skip - 1)
        measured = _measured()
        if measured != self._measured:  # the autotuner measured in this step: not timed
            self._measured, dt, step_time = measured, None, None
        self._step += 1
        if self._probe is None:
            if dt is not None:
                self._recent = (self._recent + [dt])[-self.probe_every:]
                if self._baseline is None and len(self._recent) >= self.probe_steps:
                    self._baseline = statistics.median(self._recent[-self.probe_steps:])
            self._since_probe += 1
            need = self.probe_steps if self._probes else min(2, self.probe_steps)  # first probe early
            # a competitor arrived (the step time rose clearly since the last decision): probe
            # fewer threads now (not more: at one thread a rise says nothing about two)
            risen = (dt is not None and self.threads > 1 and self._baseline is not None
                     and len(self._recent) >= self.probe_steps
                     and statistics.median(self._recent[-self.probe_steps:]) * (1 - self.gain) > self._baseline)
            # at the top count a competitor shows as a rise: scheduled probes down are only a
            # backstop, 8x rarer (each costs a few slow steps on a quiet machine)
            interval = self._interval
            if self.threads == self.max_threads > 1 and self._probes:
                interval = max(interval, 8 * self.probe_every)
            # (a rise skips the interval, not the failed probes' quiet time: ~5 % at most)
            if (risen or self._since_probe >= interval and len(self._recent) >= need) \
                    and now >= self._quiet_until:
                self._probes += 1
                if risen:  # the probe is compared with the steps since the rise
                    self._recent = self._recent[-self.probe_steps:]
                    self._baseline = None
                # down from the top, up from 1, in between alternately down and up (down after a rise)
                self._down = not self._down
                down = self.threads == self.max_threads or (self.threads > 1 and (self._down or risen))
                alt = self.threads - 1 if down else self.threads + 1
                if 1 <= alt <= self.max_threads and alt != self.threads:  # (none with max_threads=1)
                    self._probe, self._probe_times, self._probe_spent = alt, [], 0.0
                    self._set(alt)
                self._since_probe = 0
        else:
            if dt is not None:
                self._probe_times.append(dt)
            cur: float = statistics.fmean(self._recent)
            if step_time is not None:
                self._probe_spent += step_time  # settle steps included
            # a probe that can no longer win ends at once (on a busy machine a probed
            # 2-thread step can cost 50-100 one-thread steps), and so does one that was
            # slower on each of its first two timed steps (on a quiet machine: ~4 steps)
            hopeless = self._probe_spent > (4 * self.settle + self.probe_steps) * cur
            losing = len(self._probe_times) >= 2 and min(self._probe_times) >= cur
            if hopeless or losing or len(self._probe_times) >= self.probe_steps:
                alt_time = statistics.fmean(self._probe_times) if self._probe_times else float("inf")
                switch = not (hopeless or losing) and alt_time < (1 - self.gain) * cur
                self.probe_log.append((self._step, self._probe, alt_time, cur, "switch" if switch else
                                       "hopeless" if hopeless else "losing" if losing else "slower"))
                if switch:
                    self.switches.append((self._step, self.threads, self._probe))
                    self.threads = self._probe
                    self._recent = list(self._probe_times)
                    _set_local_num_threads(self.threads)  # already running at it: keep timing
                    self._interval = self.probe_every
                else:  # back, and probe less often while probes fail (up to 16x)
                    self._set(self.threads)
                    self._recent = []
                    self._interval = min(max(2 * self._interval, self.probe_every), 16 * self.probe_every)
                    # and failed probes take at most ~5 % of the time
                    self._quiet_until = now + 19 * self._probe_spent
                self._baseline = None  # re-measured from the next probe_steps steps
                self._probe = None
        if self.then is not None:
            self.then(*args)
        self._last = self.clock()

    def close(self) -> None:
        """Give back the calling thread's previous thread count (its setting before this
        object was made: a :class:`fastconv.num_threads` block's, or none, so that the
        process-wide :func:`fastconv.set_num_threads` value applies again). Idempotent."""
        _set_local_num_threads(self._saved_local)


__all__ = ["AdaptiveThreads"]
