"""LeNet-5 training steps (batch 64, synthetic data) at fixed 2 threads, fixed 1 thread and
with fastconv.adaptive.AdaptiveThreads, optionally with a CPU-bound competitor process
running for the duration (``--load``). Prints the wall time of each (interleaved blocks).

    python bench/adaptive_threads.py [--steps 938] [--load] [--repeats 2]

``--simulate`` runs the policy alone on a fake clock instead (no kernels, no noise): step
times per thread count from ``--costs`` (ms, e.g. quiet ``1:4.6,2:2.7``, one competitor
``1:5.0,2:50``), the two steps after each change of count 2.5x slow; it prints the
adaptive run's time over the best fixed count's, the policy's own overhead.

"adaptive" is what ``fastconv train`` does by default (``--threads auto``): an
AdaptiveThreads over 1..2 threads, started on 1. The medians over the repeats are printed
last, with each mode's ratio to the best fixed count.
"""
import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np

import fastconv
from fastconv.adaptive import AdaptiveThreads
from fastconv.training import train_epoch


def _spin(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def run(mode, steps, batches):
    rng = np.random.default_rng(0)
    model = fastconv.models.lenet5(rng=rng)
    opt = fastconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = fastconv.nn.CrossEntropyLoss()
    progress = None
    if mode == "adaptive":
        progress = AdaptiveThreads(2)
        progress.start()
    else:
        fastconv.set_num_threads(mode)
    train_epoch(model, loss, opt, batches[:5])  # warm-up (workspaces, plans)
    t0 = time.perf_counter()
    train_epoch(model, loss, opt, batches[:steps], progress=progress)
    dt = time.perf_counter() - t0
    extra = ""
    if progress:
        log = [(s, n, round(t * 1e3, 1), round(c * 1e3, 1), o) for s, n, t, c, o in progress.probe_log]
        extra = (f" switches {progress.switches[:6]}{'...' if len(progress.switches) > 6 else ''}, "
                 f"end at {progress.threads}; probes (step, threads, ms, vs ms, outcome) {log[:8]}"
                 f"{'...' if len(log) > 8 else ''}")
    fastconv.set_num_threads(None)
    return dt, extra


def simulate(costs, steps, slow_after_change=2, slow_factor=2.5):
    """The adaptive policy on a fake clock: (total seconds, thread counts used, adapter)."""
    class Clock:
        t = 0.0

        def __call__(self):
            return self.t

    clock = Clock()
    a = AdaptiveThreads(max(costs), clock=clock)
    a.start()
    used, last, since = [], None, 0
    for _ in range(steps):
        n = fastconv.get_num_threads()
        since = since + 1 if n == last else 1
        last = n
        clock.t += costs[n] * (slow_factor if since <= slow_after_change else 1.0)
        used.append(n)
        a()
    a.close()
    return clock.t, used, a


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=938, help="default 938: one MNIST epoch at batch 64")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--load", action="store_true", help="run one CPU-bound competitor process")
    ap.add_argument("--simulate", action="store_true", help="the policy on a fake clock (see --costs)")
    ap.add_argument("--costs", default="1:4.6,2:2.7", help="--simulate: ms per step per thread count")
    args = ap.parse_args()
    if args.simulate:
        costs = {int(k): float(v) * 1e-3 for k, v in (kv.split(":") for kv in args.costs.split(","))}
        total, used, a = simulate(costs, args.steps)
        best = min(costs.values()) * args.steps
        print(f"simulated {args.steps} steps, costs {args.costs} ms: adaptive {total:.3f} s, best fixed "
              f"{best:.3f} s: {total / best:.3f}x; steps per count "
              f"{ {n: used.count(n) for n in sorted(costs)} }; probes {len(a.probe_log)}, switches {a.switches}")
        return
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64))
               for _ in range(args.steps)]
    stop = mp.Event()
    comp = None
    if args.load:
        comp = mp.Process(target=_spin, args=(stop,), daemon=True)
        comp.start()
    print(f"loadavg at start {os.getloadavg()}, competitor: {bool(comp)}, autotune {fastconv.get_autotune()}")
    times = {2: [], 1: [], "adaptive": []}
    try:
        for r in range(args.repeats):
            for mode in times:
                dt, extra = run(mode, args.steps, batches)
                times[mode].append(dt)
                print(f"repeat {r} threads {mode!s:>8}: {dt:6.2f} s for {args.steps} steps "
                      f"({dt / args.steps * 1e3:.1f} ms/step){extra}", flush=True)
        med = {m: statistics.median(v) for m, v in times.items()}
        best = min(med[1], med[2])
        print(f"medians over {args.repeats} repeats ({fastconv.autotune.cpu_model()}, "
              f"{os.cpu_count()} CPUs, competitor: {bool(comp)}):")
        for m, v in med.items():
            print(f"  threads {m!s:>8}: {v / args.steps * 1e3:6.2f} ms/step, {v / best:.2f}x the best fixed count")
    finally:
        stop.set()
        if comp is not None:
            comp.join(5)


if __name__ == "__main__":
    main()
