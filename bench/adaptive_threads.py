"""LeNet-5 training steps (batch 64, synthetic data) at fixed 2 threads, fixed 1 thread and
with fastconv.adaptive.AdaptiveThreads, optionally with a CPU-bound competitor process
running for the duration (``--load``). Prints the wall time of each (interleaved blocks).

    python bench/adaptive_threads.py [--steps 200] [--load] [--repeats 2]
"""
import argparse
import multiprocessing as mp
import os
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
    extra = f" switches {progress.switches[:6]}{'...' if len(progress.switches) > 6 else ''}, end at {progress.threads}" if progress else ""
    fastconv.set_num_threads(None)
    return dt, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--load", action="store_true", help="run one CPU-bound competitor process")
    args = ap.parse_args()
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((64, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 64))
               for _ in range(args.steps)]
    stop = mp.Event()
    comp = None
    if args.load:
        comp = mp.Process(target=_spin, args=(stop,), daemon=True)
        comp.start()
    print(f"loadavg at start {os.getloadavg()}, competitor: {bool(comp)}, autotune {fastconv.get_autotune()}")
    try:
        for r in range(args.repeats):
            for mode in (2, 1, "adaptive"):
                dt, extra = run(mode, args.steps, batches)
                print(f"repeat {r} threads {mode!s:>8}: {dt:6.2f} s for {args.steps} steps "
                      f"({dt / args.steps * 1e3:.1f} ms/step){extra}")
    finally:
        stop.set()
        if comp is not None:
            comp.join(5)


if __name__ == "__main__":
    main()
