"""fastconv.signal.correlate2d against OpenCV's filter2D, the two calls alternated in one
process (load from other processes then hits both alike; pytest-benchmark times one
implementation after the other, so a noisy spell can land on one only).

    python bench/filter_interleaved.py [--size 2048] [--kernel 31] [--boundary fill]
        [--threads 1] [--dtype float32] [--rounds 30] [--method auto]

Prints the median, minimum and quartiles of each and the ratio of the medians.
"""
import argparse
import time

import numpy as np

import fastconv
import fastconv.signal

BORDERS = {"fill": "BORDER_CONSTANT", "symm": "BORDER_REFLECT"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--kernel", type=int, default=31)
    ap.add_argument("--boundary", choices=sorted(BORDERS), default="fill")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--method", choices=["auto", "direct", "fft"], default="auto")
    args = ap.parse_args()
    import cv2  # a bench-only comparison (opencv-python-headless)

    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.size, args.size)).astype(args.dtype)
    kernel = rng.standard_normal((args.kernel, args.kernel)).astype(args.dtype)
    fastconv.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    border = getattr(cv2, BORDERS[args.boundary])
    impls = {
        "fastconv": lambda: fastconv.signal.correlate2d(image, kernel, "same", args.boundary, method=args.method),
        "opencv": lambda: cv2.filter2D(image, -1, kernel, borderType=border),
    }
    for fn in impls.values():  # warm-up: plans, FFT twiddles, the cost model's calibration
        fn()
    times = {name: [] for name in impls}
    for _ in range(args.rounds):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    print(f"{args.size}^2 {args.dtype} {args.kernel}x{args.kernel} {args.boundary}, {args.threads} thread(s), "
          f"method={args.method}, {args.rounds} alternated rounds (ms)")
    for name, ts in times.items():
        q = np.percentile(ts, [0, 25, 50, 75]) * 1e3
        print(f"  {name:9s} median {q[2]:7.2f}  min {q[0]:7.2f}  quartiles {q[1]:.2f}-{q[3]:.2f}")
    print(f"  fastconv / opencv (medians): {np.median(times['fastconv']) / np.median(times['opencv']):.2f}")


if __name__ == "__main__":
    main()
