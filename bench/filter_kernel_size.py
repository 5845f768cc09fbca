"""Time versus kernel size of one 2048x2048 float32 'same' symm correlation: fastconv direct,
fastconv FFT (overlap-save tiles), fastconv auto, scipy.signal.correlate2d (up to 15x15: it is slow),
scipy.signal.fftconvolve / oaconvolve on the symmetric-padded image, and OpenCV filter2D
(BORDER_REFLECT, which is 'symm') when cv2 is installed; all at fastconv's thread count
(OpenCV's set to it too; scipy.fft gets it as workers). Prints a markdown table with the
measured direct/FFT crossover and the 'auto' rule's cost constants, and writes
``bench/filter_kernel_size.png`` (log-log, one line per method).

    python bench/filter_kernel_size.py                 # sizes 3..63, 5 interleaved rounds
    python bench/filter_kernel_size.py --sizes 3 31 --reps 2 --size 1024   # smoke run
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import fastconv
import fastconv.signal as fs
from fastconv._atomic import atomic_write
from fastconv.functional import _fft

SIZES = (3, 5, 7, 9, 11, 15, 21, 31, 41, 63)
SCIPY_DIRECT_MAX = 15


def methods(img, threads):
    import scipy.signal as ss

    out = {
        "fastconv direct": lambda k: fs.correlate2d(img, k, "same", "symm", method="direct"),
        "fastconv fft": lambda k: fs.correlate2d(img, k, "same", "symm", method="fft"),
        "fastconv auto": lambda k: fs.correlate2d(img, k, "same", "symm", method="auto"),
        "scipy correlate2d": lambda k: ss.correlate2d(img, k, "same", "symm"),
    }

    def padded(k, f):
        kh, kw = k.shape
        xe = np.pad(img, ((kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)), mode="symmetric")
        return f(xe, k[::-1, ::-1], "valid")

    out["scipy fftconvolve (padded)"] = lambda k: padded(k, ss.fftconvolve)
    out["scipy oaconvolve (padded)"] = lambda k: padded(k, ss.oaconvolve)
    try:
        import cv2

        cv2.setNumThreads(threads)
        out["OpenCV filter2D"] = lambda k: cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
    except ImportError:
        pass
    return out


def plot(rows, names, sizes, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in names:
        pts = [(s, rows[s][name]) for s in sizes if rows[s].get(name) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.set_xlabel("kernel size k (k x k)")
    ax.set_ylabel("median time (ms)")
    ax.set_title(f"2048$^2$ float32 'same' symm correlation, {fastconv.get_num_threads()} thread(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(png, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--size", type=int, default=2048, help="image side")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--png", default=str(Path(__file__).with_name("filter_kernel_size.png")))
    args = p.parse_args(argv)
    if args.threads:
        fastconv.set_num_threads(args.threads)
    threads = fastconv.get_num_threads()
    rng = np.random.default_rng(0)
    img = rng.standard_normal((args.size, args.size)).astype(np.float32)
    runs = methods(img, threads)
    names = list(runs)
    rows: dict[int, dict[str, float | None]] = {}
    mins: dict[tuple[int, str], float] = {}
    for s in args.sizes:
        k = rng.standard_normal((s, s)).astype(np.float32)
        rows[s] = {}
        # interleaved rounds (one call of each method per round): a noisy shared machine
        # slows every method alike; median (and min) per method
        live = {n: f for n, f in runs.items() if not (n == "scipy correlate2d" and s > SCIPY_DIRECT_MAX)}
        times: dict[str, list[float]] = {n: [] for n in live}
        for f in live.values():
            f(k)  # warm-up
        for rnd in range(args.reps):
            for name, f in live.items():
                if name == "scipy correlate2d" and rnd:
                    continue  # seconds per call: one run
                t0 = time.perf_counter()
                f(k)
                times[name].append(1e3 * (time.perf_counter() - t0))
        for name in runs:
            rows[s][name] = statistics.median(times[name]) if name in times else None  # None: minutes per call
            if name in times:
                mins[(s, name)] = min(times[name])
        print(f"k={s}: " + ", ".join(f"{n} {v:.1f}" for n, v in rows[s].items() if v is not None), flush=True)
    print(f"\n{args.size}x{args.size} float32 'same' symm, {threads} thread(s), median (min) of {args.reps} "
          f"interleaved rounds (ms; scipy correlate2d: 1 run, skipped above {SCIPY_DIRECT_MAX})\n")
    print("| k | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for s in args.sizes:
        cells = [("-" if rows[s][n] is None else f"{rows[s][n]:.1f} ({mins[(s, n)]:.1f})") for n in names]
        print(f"| {s} | " + " | ".join(cells) + " |")
    faster = [s for s in args.sizes if mins[(s, "fastconv fft")] < mins[(s, "fastconv direct")]]
    print(f"\nmeasured crossover (min): FFT faster from k = {faster[0] if faster else 'none (direct faster at every size)'}")
    costs, source = _fft.cost_constants(np.float32)
    print(f"'auto' cost constants ({source}, ns): " + ", ".join(f"{n}={v:g}" for n, v in zip(_fft._COST_NAMES, costs)))
    plot(rows, names, args.sizes, args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
