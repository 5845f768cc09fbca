"""2-D filtering benchmarks (issue 15's grid): fastconv.signal.correlate2d vs
scipy.signal.correlate2d and OpenCV's filter2D (``opencv-python-headless``, a bench-only
comparison; its rows are skipped when cv2 is absent).

Run: ``pytest bench/test_bench_signal.py --benchmark-only`` (~6-9 minutes on 2 cores).

- One 2048x2048 image, 'same' output, float32 and float64, kernels 3/5/7/15/31, boundaries
  fill (zeros; OpenCV BORDER_CONSTANT) and symm (edge repeated; OpenCV BORDER_REFLECT), at
  1 and 2 threads (cv2.setNumThreads; SciPy is single-threaded whatever the count).
  ``fastconv`` is ``method="auto"`` (direct or FFT by the measured cost rule; opt-in, the
  drop-ins' default is "direct"); ``fastconv-direct`` forces the direct kernel (rows for
  k >= 15, where auto may pick the FFT; below that auto is direct).
  Goals: fastconv <= 1.0x OpenCV's time and >= 30x SciPy's speed. SciPy's 15x15 and 31x31
  take seconds a call: they run 2 and 1 rounds.
- A 256x512x512 float32 stack with 3x3 and 5x5 kernels: fastconv.filter2d in one parallel
  call vs OpenCV's filter2D over the planes in a loop vs scipy.ndimage.correlate with a
  (1, k, k) kernel (ndimage's 'reflect' boundary = symm; same work, slightly different
  semantics at even kernels and in skipping zero taps).
- SciPy's small-array per-call overhead: a 32x32 float64 image, 3x3 ('same', fill).
  Goal: <= 1.0x SciPy's time.
- Sobel magnitude on 2048x2048 float32 and uint8 (fastconv.filters.sobel vs
  skimage.filters.sobel). Goal: <= skimage's time / 10.

Timings on a shared machine are noisy: read the medians (and the minima).
"""
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import fastconv
import fastconv.signal

try:
    import cv2
except ImportError:  # OpenCV is a comparison, never a dependency
    cv2 = None

try:
    import fastconv.filters as fc_filters
except ImportError:  # written alongside; absent in older trees
    fc_filters = None

try:
    import skimage.filters
except ImportError:
    skimage = None

SIZE = 2048
KERNELS = [3, 5, 7, 15, 31]
BOUNDARIES = ["fill", "symm"]
DTYPES = ["float32", "float64"]
CV_BORDER = {"fill": "BORDER_CONSTANT", "symm": "BORDER_REFLECT"}
SCIPY_ROUNDS = {15: 2, 31: 1}  # seconds a call: pedantic rounds
STACK = (256, 512, 512)


def _data(shape, k, dtype):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape).astype(dtype), rng.standard_normal((k, k)).astype(dtype))


def _cv_threads(n):
    if cv2 is None:
        pytest.skip("opencv-python-headless is not installed")
    cv2.setNumThreads(n)


def _run(benchmark, fn, rounds=None):
    if rounds is None:
        benchmark(fn)
    else:
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)


@pytest.mark.parametrize("threads_for_run", [1, 2], indirect=True, ids=["1thr", "2thr"])
@pytest.mark.parametrize("impl", ["fastconv", "fastconv-direct", "opencv", "scipy"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("k", KERNELS, ids=[f"{k}x{k}" for k in KERNELS])
@pytest.mark.parametrize("dtype", DTYPES)
def test_correlate2d_same(benchmark, dtype, k, boundary, impl, threads_for_run):
    if impl == "fastconv-direct" and k < 15:
        pytest.skip("auto is direct below 15x15: the fastconv row")
    if impl == "scipy" and threads_for_run != 1:
        pytest.skip("scipy.signal.correlate2d is single-threaded")
    image, kernel = _data((SIZE, SIZE), k, dtype)
    benchmark.group = f"correlate2d 2048x2048 {dtype} {k}x{k} {boundary} {threads_for_run} thr"
    benchmark.extra_info.update(kernel=k, boundary=boundary, impl=impl, threads=threads_for_run, dtype=dtype)
    rounds = None
    if impl in ("fastconv", "fastconv-direct"):
        method = "auto" if impl == "fastconv" else "direct"
        fn = lambda: fastconv.signal.correlate2d(image, kernel, "same", boundary, method=method)  # noqa: E731
    elif impl == "scipy":
        fn = lambda: scipy.signal.correlate2d(image, kernel, "same", boundary)  # noqa: E731
        rounds = SCIPY_ROUNDS.get(k)
    else:
        _cv_threads(threads_for_run)
        border = getattr(cv2, CV_BORDER[boundary])
        # filter2D correlates with the anchor at k // 2: the window of correlate2d's 'same' for odd k
        fn = lambda: cv2.filter2D(image, -1, kernel, borderType=border)  # noqa: E731
    _run(benchmark, fn, rounds)


@pytest.mark.parametrize("threads_for_run", [1, 2], indirect=True, ids=["1thr", "2thr"])
@pytest.mark.parametrize("impl", ["fastconv", "opencv", "scipy.ndimage"])
@pytest.mark.parametrize("k", [3, 5], ids=["3x3", "5x5"])
def test_filter2d_stack(benchmark, k, impl, threads_for_run):
    """A 256x512x512 float32 stack, symm boundary, 'same' output."""
    if impl == "scipy.ndimage" and threads_for_run != 1:
        pytest.skip("scipy.ndimage.correlate is single-threaded")
    stack, kernel = _data(STACK, k, np.float32)
    benchmark.group = f"filter2d stack 256x512x512 float32 {k}x{k} symm {threads_for_run} thr"
    benchmark.extra_info.update(kernel=k, impl=impl, threads=threads_for_run)
    rounds = 3
    if impl == "fastconv":
        fn = lambda: fastconv.filter2d(stack, kernel, "same", "symm")  # noqa: E731
    elif impl == "opencv":
        _cv_threads(threads_for_run)

        def fn():  # a new output stack each call, as fastconv and SciPy return
            out = np.empty_like(stack)
            for i in range(stack.shape[0]):
                out[i] = cv2.filter2D(stack[i], -1, kernel, borderType=cv2.BORDER_REFLECT)
            return out
    else:
        fn = lambda: scipy.ndimage.correlate(stack, kernel[None], mode="reflect")  # noqa: E731
        rounds = 2
    _run(benchmark, fn, rounds)


# SciPy's small-array set (its asv Convolve2D/Correlate2D cases): per-call overhead dominates
SMALL = [((8, 8), 1, "float64", "fill"), ((32, 32), 3, "float64", "fill"), ((32, 32), 3, "float32", "symm"),
         ((32, 32), 5, "float64", "wrap"), ((64, 64), 3, "float64", "fill")]


@pytest.mark.parametrize("impl", ["fastconv", "scipy"])
@pytest.mark.parametrize("shape,k,dtype,boundary", SMALL,
                         ids=[f"{s[0]}x{s[1]}-{k}x{k}-{d}-{b}" for s, k, d, b in SMALL])
def test_small_call_overhead(benchmark, impl, shape, k, dtype, boundary):
    """Small images: per-call overhead (goal: fastconv <= 1.0x SciPy's time)."""
    image, kernel = _data(shape, k, np.dtype(dtype))
    benchmark.group = f"correlate2d {shape[0]}x{shape[1]} {dtype} {k}x{k} same {boundary} (per-call overhead)"
    benchmark.extra_info.update(impl=impl)
    f = fastconv.signal.correlate2d if impl == "fastconv" else scipy.signal.correlate2d
    benchmark(lambda: f(image, kernel, "same", boundary))


@pytest.mark.parametrize("threads_for_run", [1, 2], indirect=True, ids=["1thr", "2thr"])
@pytest.mark.parametrize("impl", ["fastconv", "skimage"])
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_sobel_magnitude(benchmark, dtype, impl, threads_for_run):
    """Sobel magnitude of a 2048x2048 image (goal: fastconv <= skimage's time / 10)."""
    if impl == "fastconv" and fc_filters is None:
        pytest.skip("fastconv.filters is not available")
    if impl == "skimage" and (skimage is None or threads_for_run != 1):
        pytest.skip("scikit-image is absent or single-threaded")
    rng = np.random.default_rng(0)
    image = (rng.random((SIZE, SIZE)) * 255).astype(dtype)
    benchmark.group = f"sobel magnitude 2048x2048 {dtype} {threads_for_run} thr"
    benchmark.extra_info.update(impl=impl, threads=threads_for_run, dtype=dtype)
    f = fc_filters.sobel if impl == "fastconv" else skimage.filters.sobel
    benchmark(lambda: f(image))
