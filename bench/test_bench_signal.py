"""2-D filtering benchmarks: fastconv.signal.correlate2d vs scipy.signal.correlate2d (and
OpenCV's filter2D when ``opencv-python-headless`` is installed: a bench-only comparison).

Run: ``pytest bench/test_bench_signal.py --benchmark-only`` (OpenCV rows are skipped when cv2
is absent). One 2048x2048 float32 image, 'same' output, kernels 3x3 / 5x5 / 15x15, boundaries
fill (zeros; OpenCV BORDER_CONSTANT) and symm (edge repeated; OpenCV BORDER_REFLECT), at 1 and
2 threads (SciPy is single-threaded whatever the count). Timings on a shared machine are noisy:
read the medians.
"""
import numpy as np
import pytest
import scipy.signal

import fastconv
import fastconv.signal

try:
    import cv2
except ImportError:  # OpenCV is a comparison, never a dependency
    cv2 = None

SIZE = 2048
KERNELS = [3, 5, 15]
BOUNDARIES = ["fill", "symm"]
CV_BORDER = {"fill": "BORDER_CONSTANT", "symm": "BORDER_REFLECT"}


def _data(k):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((SIZE, SIZE)).astype(np.float32),
            rng.standard_normal((k, k)).astype(np.float32))


@pytest.mark.parametrize("threads_for_run", [1, 2], indirect=True, ids=["1thr", "2thr"])
@pytest.mark.parametrize("impl", ["fastconv", "scipy", "opencv"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", KERNELS, ids=[f"{k}x{k}" for k in KERNELS])
def test_correlate2d_same(benchmark, k, boundary, impl, threads_for_run):
    image, kernel = _data(k)
    benchmark.group = f"correlate2d 2048x2048 float32 {k}x{k} {boundary} {threads_for_run} thr"
    benchmark.extra_info.update(kernel=k, boundary=boundary, impl=impl, threads=threads_for_run)
    if impl == "fastconv":
        fn = lambda: fastconv.signal.correlate2d(image, kernel, "same", boundary)  # noqa: E731
    elif impl == "scipy":
        if threads_for_run != 1:
            pytest.skip("scipy.signal.correlate2d is single-threaded")
        fn = lambda: scipy.signal.correlate2d(image, kernel, "same", boundary)  # noqa: E731
    else:
        if cv2 is None:
            pytest.skip("opencv-python-headless is not installed")
        cv2.setNumThreads(threads_for_run)
        border = getattr(cv2, CV_BORDER[boundary])
        # filter2D correlates with the anchor at k // 2: the window of correlate2d's 'same' for odd k
        fn = lambda: cv2.filter2D(image, -1, kernel, borderType=border)  # noqa: E731
    if impl == "scipy" and k == 15:
        benchmark.pedantic(fn, rounds=3, iterations=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("k", [3, 5])
def test_filter2d_stack(benchmark, k):
    """A stack of 64 planes of 256x256 in one parallel call."""
    rng = np.random.default_rng(0)
    stack = rng.standard_normal((64, 256, 256)).astype(np.float32)
    kernel = rng.standard_normal((k, k)).astype(np.float32)
    benchmark.group = f"filter2d stack 64x256x256 float32 {k}x{k}"
    benchmark(lambda: fastconv.filter2d(stack, kernel, "same", "symm"))
