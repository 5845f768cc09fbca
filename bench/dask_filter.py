"""Out-of-core filtering: fastconv.dask.correlate2d over a chunked image vs the in-memory
fastconv.signal.correlate2d (and dask_image.ndfilters.correlate when installed).

    python bench/dask_filter.py [--size 8192] [--chunk 2048] [--kernel 5] [--repeats 3]

Default: an 8192x8192 float32 image (256 MiB) in 2048x2048 chunks, a 5x5 kernel, 'same'
mode, boundary 'symm'. The dask rows run on Dask's threaded scheduler (one worker per core)
and on the synchronous one, each with fastconv's default thread count and with one kernel
thread per block (``fastconv.set_num_threads(1)``, set before ``.compute()``). The chunked
array is built from an in-memory NumPy array (``dask.array.from_array``), so the figures are
the cost of chunking, overlap and scheduling, not of reading from disk. Prints medians.
"""
import argparse
import os
import statistics
import time

import numpy as np

import fastconv
import fastconv.signal

try:
    import dask
    import dask.array as da

    import fastconv.dask as fdask
except ImportError:  # pragma: no cover
    raise SystemExit("needs the dask extra: pip install 'fastconv[dask]'") from None


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.size, args.size), dtype=np.float32)
    kernel = rng.standard_normal((args.kernel, args.kernel)).astype(np.float32)
    darr = da.from_array(image, chunks=args.chunk)
    threads = fastconv.get_num_threads()
    cores = os.cpu_count()
    print(f"{args.size}x{args.size} float32, chunks {args.chunk}^2, {args.kernel}x{args.kernel} kernel, "
          f"'same'/'symm'; {cores} CPUs, fastconv threads {threads}, {args.repeats} repeats")

    rows = []
    t = median_time(lambda: fastconv.signal.correlate2d(image, kernel, "same", "symm"), args.repeats)
    rows.append(("in-memory fastconv.signal.correlate2d", t))
    reference = fastconv.signal.correlate2d(image, kernel, "same", "symm")

    for scheduler in ("threads", "synchronous"):
        for n in (None, 1):
            fastconv.set_num_threads(n)
            label = f"fastconv.dask, {scheduler} scheduler, kernel threads {n or threads}"
            with dask.config.set(scheduler=scheduler):
                lazy = fdask.correlate2d(darr, kernel, "same", "symm")
                t = median_time(lazy.compute, args.repeats)
                assert np.array_equal(lazy.compute(), reference)
            rows.append((label, t))
    fastconv.set_num_threads(None)

    try:
        from dask_image import ndfilters
    except ImportError:
        print("(dask_image not installed: its row is skipped)")
    else:
        # ndimage's 'reflect' is SciPy's 'symm'; ndimage centres an odd kernel as correlate2d
        lazy = ndfilters.correlate(darr, kernel, mode="reflect")
        with dask.config.set(scheduler="threads"):
            rows.append(("dask_image.ndfilters.correlate, threads scheduler",
                         median_time(lazy.compute, args.repeats)))

    width = max(len(r[0]) for r in rows)
    for label, t in rows:
        print(f"{label:<{width}}  {t * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
