"""The serial part of a LeNet-5 training step: the time outside fastconv's kernels.

    python bench/serial_part.py [--batch 64] [--steps 300] [--repeats 7] [--profile]

What it measures (1 thread, float32, batch 64, SGD momentum 0.9, the step of
``fastconv.training.train_epoch``: forward, loss, zero_grad, backward, optimizer step, the
loop's bookkeeping):

Times are CPU time of the calling thread (``time.thread_time``): at one thread the kernels
run in it, and another process taking the core (this 2-core machine is shared) does not
count, as wall time would.

* ``step``: the median time of one step (medians of ``--repeats`` blocks of ``--steps``).
* ``kernels``: the time inside fastconv's compiled kernels (every function of the
  ``fastconv._kernels.*`` modules that the layers call through their module attribute),
  measured in a second pass in which each of them is wrapped by a timer (``thread_time``
  before and after the call; the wrapper's own frame is outside the timed span, and the
  part of the clock calls inside it is calibrated on a no-op and subtracted).
* ``serial``: in the wrapped pass, its time minus the kernel time and the wrappers' own
  cost (calibrated per call on a wrapped no-op); the same pass, so the noise of two passes
  does not enter the difference. It is the Python of the layers, loss, optimizer and loop, the
  NumPy calls between kernels (argmax, small reductions, in-place adds), the allocations.
  This is what does not run on more threads (the bound on the 1 -> 2 thread speed-up,
  Amdahl), so it is what this bench tracks; passes alternate (plain, wrapped, plain, ...)
  so a busy spell of the machine hits both.

Also printed: the per-step count of kernel calls, and the fit ``t(N) = a + b N`` of the
plain step time at batch 1, 2, 4, 8 (``a``: the per-step cost that does not grow with the
batch: the serial part plus the kernels' fixed costs). ``--profile`` prints cProfile's
top functions by own time (profiler overhead inflates them; a guide to where it goes).
"""
from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import os
import pkgutil
import pstats
import statistics
import time

import numpy as np

import fastconv
from fastconv import _kernels
from fastconv.training import train_epoch


def kernel_modules():
    return [importlib.import_module(f"fastconv._kernels.{m.name}") for m in pkgutil.iter_modules(_kernels.__path__)]


class KernelTimer:
    """Replace every callable of the kernel modules by a timing wrapper (and back)."""

    def __init__(self):
        self.seconds = 0.0
        self.calls = 0
        self._saved = []

    def _wrap(self, fn):
        clock = time.thread_time

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = clock()
            r = fn(*args, **kwargs)
            self.seconds += clock() - t0
            self.calls += 1
            return r

        return timed

    def __enter__(self):
        for mod in kernel_modules():
            for name in dir(mod):
                fn = getattr(mod, name)
                if name.startswith("__") or isinstance(fn, type) or not callable(fn):
                    continue
                self._saved.append((mod, name, fn))
                setattr(mod, name, self._wrap(fn))
        return self

    def __exit__(self, *exc):
        for mod, name, fn in self._saved:
            setattr(mod, name, fn)
        self._saved = []


def setup(batch, steps, seed=0):
    rng = np.random.default_rng(seed)
    model = fastconv.models.lenet5(rng=rng)
    opt = fastconv.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss = fastconv.nn.CrossEntropyLoss()
    batches = [(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, batch))
               for _ in range(steps)]
    train_epoch(model, loss, opt, batches[:10])  # warm-up: workspaces, plans
    return model, loss, opt, batches


def per_step(model, loss, opt, batches):
    t0 = time.thread_time()
    train_epoch(model, loss, opt, batches)
    return (time.thread_time() - t0) / len(batches)


def wrapper_overhead(n=20000):
    """Seconds the timing wrapper adds per call inside its span and outside it (a wrapped
    no-op against the plain one; the minimum of 5 tries)."""
    best_in, best_out = float("inf"), float("inf")
    for _ in range(5):
        kt = KernelTimer()
        noop = kt._wrap(int)
        t0 = time.thread_time()
        for _ in range(n):
            int()
        t1 = time.thread_time()
        for _ in range(n):
            noop()
        t2 = time.thread_time()
        inside = kt.seconds / n
        best_in = min(best_in, inside)
        best_out = min(best_out, max(0.0, (t2 - t1 - (t1 - t0)) / n - inside))
    return best_in, best_out


def measure(batch=64, steps=300, repeats=7):
    fastconv.set_num_threads(1)
    model, loss, opt, batches = setup(batch, steps)
    inside, outside = wrapper_overhead()
    plain, kernel, serial, calls = [], [], [], 0
    for _ in range(repeats):
        plain.append(per_step(model, loss, opt, batches))
        with KernelTimer() as kt:
            wrapped = per_step(model, loss, opt, batches)
        calls = kt.calls // steps
        k = kt.seconds / steps - calls * inside
        kernel.append(k)
        # the same pass's time outside the kernels, less the wrappers' own frames
        serial.append(wrapped - k - calls * (inside + outside))
    step, kern = statistics.median(plain), statistics.median(kernel)
    fit = []
    for n in (1, 2, 4, 8):
        m, lo, op, bs = setup(n, 200)
        fit.append((n, statistics.median(per_step(m, lo, op, bs) for _ in range(5))))
    ns, ts = np.array([n for n, _ in fit], float), np.array([t for _, t in fit])
    b, a = np.polyfit(ns, ts, 1)
    fastconv.set_num_threads(None)
    return {"step": step, "kernels": kern, "serial": statistics.median(serial),
            "serial_min": min(serial), "kernel_calls": calls, "wrapper_us": (inside * 1e6, outside * 1e6),
            "intercept": float(a), "slope": float(b), "fit": fit}


def breakdown(batch=64, steps=300):
    """Serial time per component (layer forward / backward, loss, optimizer, the rest of the
    loop): each component's CPU time minus the kernel time inside it, per step."""
    fastconv.set_num_threads(1)
    model, loss, opt, batches = setup(batch, steps)
    clock = time.thread_time
    spent: dict[str, list[float]] = {}
    saved = []

    def wrap(obj, attr, label):
        fn = getattr(obj, attr)

        def timed(*args, **kwargs):
            k0, t0 = kt.seconds, clock()
            r = fn(*args, **kwargs)
            t, k = clock() - t0, kt.seconds - k0
            acc = spent.setdefault(label, [0.0, 0.0])
            acc[0] += t
            acc[1] += k
            return r

        saved.append((obj, attr))
        setattr(obj, attr, timed)

    with KernelTimer() as kt:
        for name, m in model.named_modules():
            if name and not m._modules:  # leaves
                label = f"{name} {type(m).__name__}"
                wrap(m, "forward", label + " forward")
                wrap(m, "backward", label + " backward")
        wrap(loss, "forward", "loss forward")
        wrap(loss, "backward", "loss backward")
        wrap(opt, "step", "optimizer step")
        wrap(opt, "zero_grad", "optimizer zero_grad")
        k0, t0 = kt.seconds, clock()
        train_epoch(model, loss, opt, batches)
        total, ktotal = clock() - t0, kt.seconds - k0
        for obj, attr in saved:
            delattr(obj, attr)
    overhead = sum(wrapper_overhead())
    fastconv.set_num_threads(None)
    rows = [(label, (t - k) / steps) for label, (t, k) in spent.items()]
    inner = sum(t for t, _ in spent.values())
    rows.append(("train_epoch loop, Sequential and the rest", (total - inner - (ktotal - sum(k for _, k in spent.values()))) / steps))
    print(f"serial time per component (us per step; kernel time inside subtracted; wrappers "
          f"add ~{overhead * 1e6:.2f} us per kernel call and a few per component):")
    for label, t in sorted(rows, key=lambda r: -r[1]):
        print(f"  {t * 1e6:8.1f}  {label}")
    print(f"  {sum(t for _, t in rows) * 1e6:8.1f}  total")


def profile(batch=64, steps=300, top=25):
    fastconv.set_num_threads(1)
    model, loss, opt, batches = setup(batch, steps)
    pr = cProfile.Profile()
    pr.enable()
    train_epoch(model, loss, opt, batches)
    pr.disable()
    fastconv.set_num_threads(None)
    pstats.Stats(pr).sort_stats("tottime").print_stats(top)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--breakdown", action="store_true", help="serial time per layer and component")
    args = ap.parse_args(argv)
    r = measure(args.batch, args.steps, args.repeats)
    print(f"LeNet-5 step, batch {args.batch}, 1 thread, {fastconv.autotune.cpu_model()} "
          f"({os.cpu_count()} CPUs), autotune {fastconv.get_autotune()}, load {os.getloadavg()[0]:.2f}:")
    print(f"  step {r['step'] * 1e3:.3f} ms, in kernels {r['kernels'] * 1e3:.3f} ms "
          f"({r['kernel_calls']} calls), serial (outside kernels) {r['serial'] * 1e3:.3f} ms "
          f"(min {r['serial_min'] * 1e3:.3f}; wrapper {r['wrapper_us'][0]:.2f} + {r['wrapper_us'][1]:.2f} us "
          "a call subtracted)")
    print(f"  t(N) = {r['intercept'] * 1e3:.3f} ms + N x {r['slope'] * 1e3:.4f} ms (fit over batch "
          + ", ".join(f"{n}: {t * 1e3:.3f}" for n, t in r["fit"]) + " ms)")
    if args.breakdown:
        breakdown(args.batch, args.steps)
    if args.profile:
        profile(args.batch, args.steps)


if __name__ == "__main__":
    main()
