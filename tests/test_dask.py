"""fastconv.dask: chunked filtering over dask arrays equals the in-memory functions.

References: fastconv.filter2d on the computed array (bit for bit: each output sums the same
taps in the same order wherever the chunk edges fall), scipy.signal.correlate2d /
convolve2d per plane (independent), scipy.ndimage and scikit-image for the edge-filter
wrapper.
"""
import itertools

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

import scipy.ndimage as ndi
import scipy.signal

import fastconv
import fastconv.dask as fdask

MODES = ["same", "valid", "full"]


@pytest.fixture(autouse=True)
def _quick():
    """Small blocks run fastest on one kernel thread and the synchronous scheduler (the
    threaded scheduler and 2 kernel threads are covered by test_schedulers)."""
    fastconv.set_num_threads(1)
    with dask.config.set(scheduler="synchronous"):
        yield
    fastconv.set_num_threads(None)

BOUNDARIES = ["fill", "wrap", "symm"]


def _in_memory(x, k, mode, boundary, fillvalue, convolve):
    return fastconv.filter2d(x, k, mode, boundary, fillvalue, convolve=convolve)


def _scipy(x, k, mode, boundary, fillvalue, convolve):
    f = scipy.signal.convolve2d if convolve else scipy.signal.correlate2d
    planes = x.reshape((-1,) + x.shape[-2:])
    out = np.stack([f(p, k, mode, boundary, fillvalue) for p in planes])
    return out.reshape(x.shape[:-2] + out.shape[-2:])


def _lazy(x, k, chunks, mode="same", boundary="fill", fillvalue=0, convolve=False):
    f = fdask.convolve2d if convolve else fdask.correlate2d
    lazy = f(da.from_array(x, chunks=chunks), k, mode, boundary, fillvalue)
    assert isinstance(lazy, da.Array)
    return lazy, _in_memory(x, k, mode, boundary, fillvalue, convolve)


def _check_all(cases):
    """Chunked == in-memory for every case (x, k, chunks, mode, boundary, fillvalue,
    convolve), computed in one dask.compute call."""
    pairs = [_lazy(*case) for case in cases]
    for (lazy, ref), got in zip(pairs, dask.compute(*[p[0] for p in pairs])):
        assert lazy.shape == ref.shape == got.shape and lazy.dtype == ref.dtype == got.dtype
        np.testing.assert_array_equal(got, ref)
    return pairs


def _check(*case):
    (lazy, ref), = _check_all([case])
    return lazy, ref


# --- every mode x boundary x correlate/convolve, odd/even kernels, chunk edges in reach ----------

@pytest.mark.parametrize("mode,boundary", list(itertools.product(MODES, BOUNDARIES)))
def test_matches_in_memory_float64(rng, mode, boundary):
    """Odd, even and mixed kernels, correlate and convolve, chunks of 5..17 pixels: chunk
    edges inside the kernel's reach."""
    x = rng.standard_normal((41, 38))
    kernels = [rng.standard_normal(s) for s in [(5, 5), (6, 4), (9, 8), (1, 3)]]
    _check_all([(x, k, chunks, mode, boundary, 0.25, convolve) for k in kernels
                for chunks, convolve in [((7, 9), False), ((13, 17), True), ((11, 5), True)]])


def test_matches_scipy_per_plane(rng):
    x = rng.standard_normal((2, 30, 27))
    k = rng.standard_normal((6, 7))
    d = da.from_array(x, chunks=(1, 8, 10))
    cases = list(itertools.product(MODES, BOUNDARIES, [False, True]))
    lazies = [(fdask.convolve2d if c else fdask.correlate2d)(d, k, m, b, -1.5) for m, b, c in cases]
    for (m, b, c), got in zip(cases, dask.compute(*lazies)):
        np.testing.assert_allclose(got, _scipy(x, k, m, b, -1.5, c), rtol=1e-12, atol=1e-12)


def test_float32_and_stacks_chunked_along_n(rng):
    x = rng.standard_normal((3, 2, 25, 29)).astype(np.float32)
    k = rng.standard_normal((7, 6)).astype(np.float32)
    pairs = _check_all([(x, k, (2, 1, 9, 12), mode, boundary, 2.0, convolve)
                        for mode in MODES for boundary in BOUNDARIES for convolve in (False, True)])
    for lazy, _ in pairs:
        assert lazy.chunks[:2] == ((2, 1), (1, 1))  # leading axes chunked independently


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kernel_larger_than_chunks_and_image(rng, boundary):
    """Kernels wider than a chunk (chunks are merged) and, for 31 rows, than the image
    (repeated mirroring / wrapping of the extension)."""
    x = rng.standard_normal((2, 23, 26))
    cases = []
    for kshape in [(9, 9), (17, 12), (31, 3)]:
        k = rng.standard_normal(kshape)
        cases += [(x, k, (1, 4, 3), mode, boundary, 0.5, convolve)
                  for mode in ("same", "full") for convolve in (False, True)]
        if kshape[0] <= 23:
            cases.append((x, k, (1, 4, 3), "valid", boundary, 0, False))
    _check_all(cases)


def test_tiny_chunks_are_merged_and_same_keeps_chunks(rng):
    x = rng.standard_normal((40, 40))
    k = rng.standard_normal((9, 9))
    d = da.from_array(x, chunks=(1, 2))
    lazy = fdask.correlate2d(d, k, "same", "symm")
    assert min(lazy.chunks[0]) >= 5 and min(lazy.chunks[1]) >= 5
    np.testing.assert_array_equal(lazy.compute(), _in_memory(x, k, "same", "symm", 0, False))
    # chunks long enough: 'same' keeps them (even kernel, both windows)
    d = da.from_array(x, chunks=(10, (15, 5, 20)))
    for f in (fdask.correlate2d, fdask.convolve2d):
        for ks in [(4, 6), (5, 5)]:
            assert f(d, np.ones(ks), "same", "wrap").chunks == d.chunks


# --- dtypes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("xdtype,kdtype", [(np.int16, np.int16), (np.uint8, np.float32), (np.int64, np.int64),
                                           (np.int32, np.float64), (np.complex128, np.complex128),
                                           (np.complex64, np.float32), (np.float64, np.complex128)])
def test_integer_and_complex_dtypes(rng, xdtype, kdtype):
    def sample(shape, dtype):
        dtype = np.dtype(dtype)
        if dtype.kind == "c":
            return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
        if dtype.kind == "f":
            return rng.standard_normal(shape).astype(dtype)
        info = np.iinfo(dtype)
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        if dtype == np.int64:  # large values: the exact int64 path, wrap-around modulo 2**64
            lo, hi = -2**40, 2**40
        return rng.integers(lo, hi, shape, endpoint=True).astype(dtype)
    x = sample((2, 17, 20), xdtype)
    k = sample((5, 4), kdtype)
    _check_all([(x, k, chunks, mode, boundary, 3, convolve) for mode in MODES for boundary in BOUNDARIES
                for chunks, convolve in [((1, 8, 9), False), ((2, 10, 7), True)]])


def test_fill_value_cast_to_the_output_dtype_not_the_input(rng):
    """fillvalue=0.5 on integers with a float kernel stays 0.5 (Dask's constant boundary
    would cast it to the input dtype)."""
    x = rng.integers(0, 255, (20, 21)).astype(np.uint8)
    k = np.ones((3, 3))
    _, got = _check(x, k, (6, 6), "same", "fill", 0.5)
    assert got[0, 0] == x[:2, :2].sum() + 5 * 0.5
    _check(x, k, (6, 6), "full", "fill", np.nan)
    _check(x.astype(np.float64), k + 1j, (6, 6), "same", "fill", 1 + 2j)  # complex fill, real image
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32 (a warning, as in memory)
        _check(x.astype(np.float32), k.astype(np.float32), (6, 6), "same", "fill", 1e300)


def test_nan_propagates_only_where_it_is_read(rng):
    x = rng.standard_normal((30, 30))
    x[15, 15] = np.nan
    _, got = _check(x, np.ones((3, 3)), (7, 8), "same", "symm")
    assert np.isnan(got[14:17, 14:17]).all() and np.isnan(got).sum() == 9


def test_empty_and_tapless_inputs():
    x = da.zeros((0, 5, 6), chunks=(1, 5, 6))
    assert fdask.correlate2d(x, np.ones((3, 3))).compute().shape == (0, 5, 6)
    y = da.ones((7, 9), chunks=3)
    np.testing.assert_array_equal(fdask.correlate2d(y, np.ones((0, 3)), "same").compute(), np.zeros((7, 9)))
    np.testing.assert_array_equal(fdask.correlate2d(y, np.ones((0, 3)), "full").compute(), np.zeros((6, 11)))


# --- schedulers and laziness ---------------------------------------------------------------------

@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_schedulers(rng, scheduler, threads):
    x = rng.standard_normal((4, 50, 60)).astype(np.float32)
    k = rng.standard_normal((5, 5)).astype(np.float32)
    ref = _in_memory(x, k, "same", "symm", 0, False)
    with dask.config.set(scheduler=scheduler):
        got = fdask.correlate2d(da.from_array(x, chunks=(1, 17, 13)), k, "same", "symm").compute()
    np.testing.assert_array_equal(got, ref)


@pytest.mark.skipif(not fastconv.openmp_enabled(), reason="serial build: always 1 thread")
def test_blocks_in_pool_threads_run_one_kernel_thread(rng):
    """The threaded scheduler runs blocks concurrently: each block's kernel gets 1 thread
    (thread-local); the synchronous scheduler keeps the caller's count."""
    counts = []

    def record(plane):
        counts.append(fastconv.get_num_threads())
        return plane.copy()

    fastconv.set_num_threads(2)
    x = da.from_array(rng.standard_normal((40, 40)), chunks=10)
    recorded = fdask.filter_function(record, 1, mode=None)
    lazy = recorded(x)
    counts.clear()  # the wrapper probes func once in the calling thread: not a block
    with dask.config.set(scheduler="threads"):
        lazy.compute()
    assert len(counts) >= 16 and set(counts) == {1}
    counts.clear()
    with dask.config.set(scheduler="synchronous"):
        lazy.compute()
    assert len(counts) >= 16 and set(counts) == {2}
    assert fastconv.get_num_threads() == 2


def test_lazy_until_compute(rng):
    calls = []

    def source(block):
        calls.append(block.shape)
        return block

    x = rng.standard_normal((30, 30))
    d = da.from_array(x, chunks=10).map_blocks(source, dtype=x.dtype, meta=np.empty((0, 0)))
    lazy = fdask.correlate2d(d, np.ones((3, 3)), "same", "wrap")
    assert calls == [] and isinstance(lazy, da.Array)
    assert len(lazy.__dask_graph__()) > 9
    lazy.compute()
    assert len(calls) == 9


def test_distributed_scheduler(rng):
    distributed = pytest.importorskip("distributed")
    x = rng.standard_normal((2, 40, 40))
    k = rng.standard_normal((4, 5))
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
        got = fdask.correlate2d(da.from_array(x, chunks=(1, 9, 11)), k, "same", "symm").compute()
    np.testing.assert_array_equal(got, _in_memory(x, k, "same", "symm", 0, False))


# --- the generic same-shape filter wrapper (edge filters) ----------------------------------------

NDI_MODES = ["reflect", "mirror", "nearest", "constant", "wrap", "grid-wrap", "grid-constant"]


@pytest.mark.parametrize("name", ["sobel", "prewitt"])
def test_filter_function_ndimage_edge_filters(rng, name):
    func = getattr(ndi, name)
    wrapped = fdask.filter_function(func, 1)
    x = rng.standard_normal((3, 25, 22)).astype(np.float32)
    d = da.from_array(x, chunks=(2, 2, 7))  # chunks shorter than 2*depth+1 get merged
    cases = [(axis, mode) for axis in (0, 1, -1) for mode in NDI_MODES]
    lazies = [wrapped(d, axis, mode=mode, cval=0.7) for axis, mode in cases]
    for (axis, mode), got in zip(cases, dask.compute(*lazies)):
        np.testing.assert_array_equal(got, np.stack([func(p, axis, mode=mode, cval=0.7) for p in x]))


def test_filter_function_wider_reach(rng):
    """A 9-tap reach (gaussian sigma 2, truncate 2 -> radius 4) with chunks of 9-13 pixels."""
    wrapped = fdask.filter_function(ndi.gaussian_filter, 4)
    x = rng.standard_normal((40, 37))
    modes = ["reflect", "mirror", "nearest", "constant", "wrap"]
    lazies = [wrapped(da.from_array(x, chunks=(9, 13)), 2.0, mode=mode, truncate=2.0) for mode in modes]
    for mode, got in zip(modes, dask.compute(*lazies)):
        np.testing.assert_array_equal(got, ndi.gaussian_filter(x, 2.0, mode=mode, truncate=2.0))


@pytest.mark.parametrize("name", ["sobel", "prewitt", "scharr", "roberts"])
def test_filter_function_skimage(rng, name):
    skf = pytest.importorskip("skimage.filters")
    func = getattr(skf, name)
    mode = None if name == "roberts" else "reflect"
    wrapped = fdask.filter_function(func, 1, mode)
    x = rng.standard_normal((2, 30, 31))
    d = da.from_array(x, chunks=(1, 8, 11))
    kw = [{}] if mode is None else [{"mode": m} for m in ("reflect", "constant", "nearest", "wrap")]
    for kwargs in kw:
        ref = np.stack([func(p, **kwargs) for p in x])
        np.testing.assert_array_equal(wrapped(d, **kwargs).compute(), ref)


FILTER_NAMES = ["sobel", "prewitt", "scharr", "sobel_h", "sobel_v", "prewitt_h", "prewitt_v", "scharr_h",
                "scharr_v", "roberts", "roberts_pos_diag", "roberts_neg_diag"]


def _edge_sample(rng, dtype, shape=(2, 26, 23)):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -30000), min(info.max, 30000), shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_fastconv_filters(rng, name):
    """fastconv.dask.<name> == fastconv.filters.<name> per plane, bit for bit."""
    filters = pytest.importorskip("fastconv.filters")
    func = getattr(filters, name)
    kws = [{}]
    if name in ("sobel", "prewitt", "scharr"):
        kws = [{"mode": m} for m in ("reflect", "mirror", "nearest", "wrap")]
        kws += [{"mode": "constant", "cval": 0.5, "axis": 1}, {"axis": 0, "mode": ("wrap", "nearest")}]
    cases = [(dtype, kw) for dtype in (np.float32, np.float64, np.uint8, np.int16)
             for kw in (kws if dtype == np.float32 else kws[::3])]
    xs = {dtype: _edge_sample(rng, dtype) for dtype in (np.float32, np.float64, np.uint8, np.int16)}
    lazies = [getattr(fdask, name)(da.from_array(xs[dt], chunks=(1, 8, 7)), **kw) for dt, kw in cases]
    for (dt, kw), got in zip(cases, dask.compute(*lazies)):
        ref = np.stack([func(p, **kw) for p in xs[dt]])
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


def test_fastconv_filters_wide_integers_within_rounding(rng):
    """32-bit integer images: fastconv.filters picks its exact-integer path from the largest
    value it sees, which a chunk sees locally: equal within float64 rounding, not bit for bit."""
    filters = pytest.importorskip("fastconv.filters")
    x = rng.integers(0, 100, (30, 31)).astype(np.int32)
    x[3, 3] = 2**30
    got = fdask.sobel(da.from_array(x, chunks=(8, 11))).compute()
    np.testing.assert_allclose(got, filters.sobel(x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("name", ["sobel", "prewitt"])
def test_fastconv_ndimage_gradients(rng, name):
    ndimage = pytest.importorskip("fastconv.ndimage")
    func = getattr(ndimage, name)
    wrapped = getattr(fdask, "ndimage_" + name)
    cases = [(dtype, axis, mode) for dtype in (np.float32, np.float64, np.int16)
             for axis in (0, -1) for mode in ("reflect", "mirror", "nearest", "constant", "wrap")]
    xs = {dtype: _edge_sample(rng, dtype) for dtype in (np.float32, np.float64, np.int16)}
    lazies = [wrapped(da.from_array(xs[dt], chunks=(1, 7, 9)), axis, mode=mode, cval=0.25)
              for dt, axis, mode in cases]
    for (dt, axis, mode), got in zip(cases, dask.compute(*lazies)):
        ref = np.stack([func(p, axis, mode=mode, cval=0.25) for p in xs[dt]])
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)


# --- bad inputs ----------------------------------------------------------------------------------

_D = da.ones((8, 8), chunks=4)

BAD = [
    (lambda: fdask.correlate2d(np.ones((8, 8)), np.ones((3, 3))), TypeError, "darr must be a dask.array.Array"),
    (lambda: fdask.convolve2d([[1.0]], np.ones((3, 3))), TypeError, "darr must be a dask.array.Array"),
    (lambda: fdask.correlate2d(da.ones(8, chunks=4), np.ones((3, 3))), ValueError, r"darr must have shape \(\.\.\., H, W\)"),
    (lambda: fdask.correlate2d(_D, np.ones(3)), ValueError, "kernel must be 2-D"),
    (lambda: fdask.correlate2d(_D, np.ones((3, 3)), mode="bogus"), ValueError, "mode must be one of 'full', 'same', 'valid'"),
    (lambda: fdask.correlate2d(_D, np.ones((3, 3)), boundary="reflect"), ValueError, "boundary must be one of 'fill'"),
    (lambda: fdask.correlate2d(_D, np.ones((9, 3)), mode="valid"), ValueError, "mode='valid' needs the kernel"),
    (lambda: fdask.correlate2d(_D, np.ones((3, 3)), fillvalue=[1, 2]), ValueError,
     "`fillvalue` must be scalar or an array with one element"),
    (lambda: fdask.correlate2d(_D, np.ones((3, 3)), fillvalue=1j), ValueError, "could not cast `fillvalue`"),
    (lambda: fdask.correlate2d(_D, np.ones((3, 3)), method="fastest"), ValueError, "method must be one of"),
    (lambda: fdask.correlate2d(_D.astype(bool), np.ones((3, 3), bool)), TypeError, "darr and kernel must be"),
    (lambda: fdask.correlate2d(_D.astype(np.float16), np.ones((3, 3), np.float16)), TypeError, "darr and kernel"),
    (lambda: fdask.filter_function(ndi.sobel, -1), ValueError, "depth must be a non-negative int"),
    (lambda: fdask.filter_function(ndi.sobel, 1.5), ValueError, "depth must be a non-negative int"),
    (lambda: fdask.filter_function("sobel", 1), TypeError, "func must be callable"),
    (lambda: fdask.filter_function(ndi.sobel, 1)(np.ones((4, 4))), TypeError, "darr must be a dask.array.Array"),
    (lambda: fdask.filter_function(ndi.sobel, 1)(_D, mode="bogus"), RuntimeError, "mode"),
    (lambda: fdask.filter_function(ndi.sobel, 1)(_D, mask=np.ones((8, 8))), TypeError, "mask is not supported"),
    (lambda: fdask.filter_function(ndi.sobel, 1)(_D, output=np.ones((8, 8))), TypeError, "output must be a dtype"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_import_does_not_load_dask():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(fastconv.__file__).resolve().parent.parent)
    code = "import sys, fastconv; print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, check=True)
    assert out.stdout.strip() == "False"


def test_missing_dask_names_the_extra():
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(fastconv.__file__).resolve().parent.parent)
    code = ("import sys; sys.modules['dask'] = None; sys.modules['dask.array'] = None\n"
            "try:\n    import fastconv.dask\nexcept ImportError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": root, "PATH": "/usr/bin:/bin"}, check=True)
    assert "fastconv[dask]" in out.stdout


def test_large_kernel_default_is_bitwise_and_fft_within_its_bound(rng):
    """A kernel large enough for 'auto' to pick the FFT: the default ('direct') is bit for bit
    the in-memory result whatever the chunks; method='fft' transforms each block and agrees
    within the FFT's normwise bound."""
    x = rng.standard_normal((180, 170)).astype(np.float64)
    k = rng.standard_normal((41, 41))
    d = da.from_array(x, chunks=(60, 50))
    want = fastconv.filter2d(x, k, "same", "symm")
    np.testing.assert_array_equal(fdask.correlate2d(d, k, "same", "symm").compute(), want)
    got = fdask.correlate2d(d, k, "same", "symm", method="fft").compute()
    bound = 64 * np.finfo(np.float64).eps * np.abs(x).sum() * np.abs(k).sum()
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)
