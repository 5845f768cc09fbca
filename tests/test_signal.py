"""fastconv.signal.correlate2d / convolve2d against scipy.signal (values, dtypes, shapes and
errors: same type, same message), and fastconv.filter2d against a loop of SciPy calls."""
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.signal as fs

FUNCS = {"correlate2d": (ss.correlate2d, fs.correlate2d), "convolve2d": (ss.convolve2d, fs.convolve2d)}
MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "pad", "wrap", "circular", "symm", "symmetric"]
FILLS = [0, 1, -2.5, 7, np.nan, 300, -1, 1 + 2j, [2], [1, 2], [], None, "x", np.float32(0.5)]
# (in1 dtype, in2 dtype, big): big integers (|v| up to 2**62) take the int64 tap loop
DTYPES = [(np.float64, np.float64, False), (np.float32, np.float32, False),
          (np.complex128, np.complex128, False), (np.complex64, np.complex64, False),
          (np.int8, np.int8, False), (np.int16, np.int16, False), (np.int32, np.int32, False),
          (np.int64, np.int64, False), (np.int64, np.int64, True), (np.uint8, np.uint8, False),
          (np.uint64, np.uint64, True), (np.int8, np.uint8, False), (np.float32, np.int16, False),
          (np.int32, np.float64, False), (np.complex64, np.float32, False), (np.bool_, np.bool_, False),
          (np.float16, np.float16, False), (np.longdouble, np.float64, False)]
SYMM_WRAP = {"wrap", "circular", "symm", "symmetric"}


def outcome(f, *args, **kwargs):
    """(result, None) or (None, (exception type, message))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return f(*args, **kwargs), None
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            return None, (type(e), str(e))


def make(rng, shape, dtype, big, nan, layout):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = (max(info.min, -2**62), min(info.max, 2**62)) if big or info.bits <= 16 else (-50, 50)
        a = rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64 if dtype.kind == "i" else np.uint64)
    elif dtype.kind == "b":
        a = rng.random(shape) < 0.5
    elif dtype.kind == "c":
        a = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    else:
        a = 4 * rng.standard_normal(shape)
    a = a.astype(dtype)
    if nan and dtype.kind == "f" and a.size:
        a.flat[rng.integers(a.size)] = np.nan
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "strided":  # every other element of a larger array, reversed columns
        big_a = np.zeros((2 * shape[0], 2 * shape[1]), dtype)
        big_a[::2, ::2] = a[:, ::-1]
        a = big_a[::2, ::-2]
    return a


def reference_values(sfunc, a, k, mode, boundary, fill):
    """SciPy in float64/complex128 for float32/complex64 results (fastconv accumulates in float32)."""
    dt = np.result_type(a, k)
    wide = {np.dtype(np.float32): np.float64, np.dtype(np.complex64): np.complex128}.get(dt)
    if wide is None:
        return None
    return outcome(sfunc, a.astype(wide), k.astype(wide), mode, boundary,
                   fill if not isinstance(fill, np.floating) else float(fill))[0]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 8), st.integers(0, 8), st.integers(0, 10), st.integers(0, 10),
       st.sampled_from(sorted(FUNCS)), st.sampled_from(MODES), st.sampled_from(BOUNDARIES),
       st.sampled_from(range(len(FILLS))), st.sampled_from(range(len(DTYPES))), st.booleans(),
       st.sampled_from(["C", "F", "strided"]), st.integers(0, 2**32 - 1))
def test_matches_scipy(H, W, kh, kw, name, mode, boundary, fill_i, dt_i, nan, layout, seed):
    rng = np.random.default_rng(seed)
    d1, d2, big = DTYPES[dt_i]
    fill = FILLS[fill_i]
    a = make(rng, (H, W), d1, big, nan, layout)
    k = make(rng, (kh, kw), d2, big, False, "C" if layout == "F" else layout)
    sfunc, ffunc = FUNCS[name]
    got, got_err = outcome(ffunc, a, k, mode, boundary, fill)
    if boundary in SYMM_WRAP and mode == "full" and 0 in (H, W):
        # SciPy dies with SIGFPE here (see test_scipy_sigfpe_case_is_a_value_error): not run
        if H + kh - 1 > 0 and W + kw - 1 > 0:  # a non-empty output: a clear error instead
            assert got_err is not None and got_err[0] is ValueError and "empty axis" in got_err[1]
        elif got_err is None:
            assert got.size == 0
        return
    want, want_err = outcome(sfunc, a, k, mode, boundary, fill)
    assert got_err == want_err
    if want_err is not None:
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.flags.c_contiguous or got.flags.f_contiguous or got.ndim == 2
    ref = reference_values(sfunc, a, k, mode, boundary, fill)
    if ref is None:  # float64, complex128, integers: the same numbers (integers exactly)
        if want.dtype.kind in "iu":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * (1 + np.nanmax(np.abs(want), initial=0)),
                                       equal_nan=True)
    else:
        fill_size = 0.0 if boundary not in ("fill", "pad") else abs(complex(np.nan_to_num(
            np.asarray(fill, dtype=complex).reshape(-1)[0])))  # SciPy ignores fillvalue otherwise
        k_abs = np.abs(k.astype(ref.dtype))
        scale = 1 + (np.nansum(np.abs(a.astype(ref.dtype))) + fill_size) * k_abs.max(initial=0)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6 * scale, equal_nan=True)


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("boundary", ["fill", "symm", "wrap"])
@pytest.mark.parametrize("shape,kshape", [((7, 9), (2, 4)), ((5, 6), (13, 3)), ((3, 4), (9, 11)), ((1, 1), (4, 4))])
def test_large_and_even_kernels_every_mode(name, boundary, shape, kshape, rng):
    """Even kernels ('same' offsets differ between the two functions) and kernels larger
    than the image (symm mirrors repeatedly), in every mode."""
    sfunc, ffunc = FUNCS[name]
    a = rng.standard_normal(shape)
    k = rng.standard_normal(kshape)
    for mode in MODES:
        for x, y in ((a, k), (k, a)):  # 'valid' swaps (correlate2d reverses the result)
            want, want_err = outcome(sfunc, x, y, mode, boundary, 0.75)
            got, got_err = outcome(ffunc, x, y, mode, boundary, 0.75)
            assert got_err == want_err
            if want_err is None:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_same_offset_differs_for_even_kernels(rng):
    a = rng.standard_normal((6, 6))
    k = rng.standard_normal((2, 2))
    full = fs.correlate2d(a, k)
    np.testing.assert_allclose(fs.correlate2d(a, k, "same"), full[1:7, 1:7], rtol=1e-12)
    np.testing.assert_allclose(fs.convolve2d(a, k, "same"), fs.convolve2d(a, k)[0:6, 0:6], rtol=1e-12)


def test_nan_propagates_through_zero_taps():
    a = np.zeros((4, 4))
    a[1, 1] = np.nan
    k = np.zeros((3, 3))  # every tap zero: 0 * NaN is NaN
    for f in (fs.correlate2d, fs.convolve2d):
        for dtype in (np.float32, np.float64):
            got = f(a.astype(dtype), k.astype(dtype), "same")
            want = ss.correlate2d(a, k, "same")
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
            assert np.isnan(got).sum() == 9


def test_integer_wraparound_and_int64_loop():
    a = np.full((3, 3), 100, np.int8)
    k = np.full((2, 2), 3, np.int8)
    got = fs.correlate2d(a, k)
    np.testing.assert_array_equal(got, ss.correlate2d(a, k))
    assert got.dtype == np.int8 and got[1, 1] == np.int8(np.int64(1200) - 5 * 256)
    big = np.array([[2**62, 3], [5, -2**61]], np.int64)
    kb = np.array([[7, -3], [2**40, 1]], np.int64)
    np.testing.assert_array_equal(fs.correlate2d(big, kb, boundary="symm"), ss.correlate2d(big, kb, boundary="symm"))
    np.testing.assert_array_equal(fs.convolve2d(big.astype(np.uint64), kb.astype(np.uint64), "same", "wrap"),
                                  ss.convolve2d(big.astype(np.uint64), kb.astype(np.uint64), "same", "wrap"))


def test_complex_conjugates_in2_and_swap():
    a = np.array([[1 + 2j, 3 - 1j, 0.5j], [2, -1j, 4]])
    k = np.array([[2 - 1j, 1j], [3, 1 + 1j]])
    for mode in MODES:
        for x, y in ((a, k), (k, a)):
            want, want_err = outcome(ss.correlate2d, x, y, mode)
            got, got_err = outcome(fs.correlate2d, x, y, mode)
            assert got_err == want_err
            if want_err is None:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("threads", [2], indirect=True)
def test_two_threads_float32(threads, rng):
    from fastconv._kernels import _filter
    previous = _filter.min_work_per_thread(1)  # this small call would otherwise run on one thread
    a = rng.standard_normal((301, 257)).astype(np.float32)
    k = rng.standard_normal((5, 4)).astype(np.float32)
    try:
        _two_threads_cases(a, k)
    finally:
        _filter.min_work_per_thread(previous)


def _two_threads_cases(a, k):
    for boundary in ("fill", "symm", "wrap"):
        got = fs.correlate2d(a, k, "same", boundary, fillvalue=0.25)
        want = ss.correlate2d(a.astype(np.float64), k.astype(np.float64), "same", boundary, fillvalue=0.25)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * (1 + np.abs(k).sum() * 4))


# (args, kwargs) on which SciPy raises: fastconv must raise the same type with the same message
ERROR_CASES = [
    (([1, 2], [[1]]), {}),
    (([[1]], [[[1]]]), {}),
    ((3, 4), {}),
    ((np.ones((3, 4)), np.ones((2, 5))), {"mode": "valid"}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"mode": "bad"}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"mode": ["same"]}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"boundary": "bad"}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"boundary": "reflect"}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"fillvalue": 1 + 2j}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"fillvalue": [1, 2]}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"fillvalue": []}),
    ((np.ones((3, 4)), np.ones((2, 2))), {"fillvalue": "x"}),
    ((np.ones((3, 4), np.uint8), np.ones((2, 2), np.uint8)), {"fillvalue": 300}),
    ((np.ones((3, 4), int), np.ones((2, 2), int)), {"fillvalue": np.nan}),
    ((np.ones((3, 4), bool), np.ones((2, 2), bool)), {}),
    ((np.ones((3, 4), np.float16), np.ones((2, 2), np.float16)), {}),
    ((np.ones((3, 4), object), np.ones((2, 2), object)), {}),
    ((np.zeros((0, 0)), np.zeros((0, 0))), {}),
]


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("args,kwargs", ERROR_CASES)
def test_errors_match_scipy(name, args, kwargs):
    sfunc, ffunc = FUNCS[name]
    want = outcome(sfunc, *args, **kwargs)[1]
    assert want is not None, "SciPy accepts this case: the table is wrong"
    assert outcome(ffunc, *args, **kwargs)[1] == want


def test_scipy_sigfpe_case_is_a_value_error():
    """SciPy dies with SIGFPE on an empty axis extended by symm/wrap in 'full' mode."""
    code = ("import numpy as np, scipy.signal as s; "
            "s.correlate2d(np.zeros((0, 3)), np.ones((2, 2)), 'full', 'symm')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode != 0
    for f in (fs.correlate2d, fs.convolve2d):
        for boundary in ("symm", "wrap"):
            with pytest.raises(ValueError, match="cannot extend an empty axis"):
                f(np.zeros((0, 3)), np.ones((2, 2)), "full", boundary)
    # fill: every output is fillvalue * sum(kernel), as SciPy
    np.testing.assert_array_equal(fs.correlate2d(np.zeros((0, 3)), np.ones((2, 2)), fillvalue=5),
                                  ss.correlate2d(np.zeros((0, 3)), np.ones((2, 2)), fillvalue=5))


# ---- fastconv.filter2d: stacks ---------------------------------------------------------
@pytest.mark.parametrize("convolve", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", ["fill", "symm", "wrap"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.complex128])
def test_filter2d_stack_matches_scipy_per_plane(convolve, mode, boundary, dtype, rng):
    x = make(rng, (3 * 2 * 9, 11), dtype, False, False, "C").reshape(3, 2, 9, 11)
    k = make(rng, (4, 3), dtype, False, False, "C")
    got = fastconv.filter2d(x, k, mode, boundary, fillvalue=2, convolve=convolve)
    sfunc = ss.convolve2d if convolve else ss.correlate2d
    wide = {np.dtype(np.float32): np.float64}.get(np.dtype(dtype), dtype)
    want = np.stack([sfunc(p.astype(wide), k.astype(wide), mode, boundary, 2) for p in x.reshape(-1, 9, 11)])
    assert got.dtype == np.result_type(x, k)
    assert got.shape == x.shape[:2] + want.shape[1:]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-4 if dtype == np.float32 else 1e-12)


FILTER2D_ERRORS = [
    (lambda: fastconv.filter2d(np.ones(5), np.ones((2, 2))), ValueError, "images must have shape (..., H, W)"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones(2)), ValueError, "kernel must be 2-D"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), mode="bad"), ValueError,
     "mode must be one of 'full', 'same', 'valid'"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), boundary="reflect"), ValueError,
     "boundary must be one of 'fill'"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), boundary=[1]), ValueError,
     "boundary must be one of"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((6, 2)), mode="valid"), ValueError,
     "mode='valid' needs the kernel"),
    (lambda: fastconv.filter2d(np.ones((5, 5), bool), np.ones((2, 2), bool)), TypeError, "bool"),
    (lambda: fastconv.filter2d(np.ones((5, 5), np.float16), np.ones((2, 2), np.float16)), TypeError, "float16"),
    # fillvalue: SciPy's conversion and messages (functional.filter.fill_value)
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), fillvalue=[1, 2]), ValueError,
     "`fillvalue` must be scalar or an array with one element"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), fillvalue=1j), ValueError,
     "could not cast `fillvalue` directly to the output type"),
    (lambda: fastconv.filter2d(np.ones((5, 5), np.int16), np.ones((2, 2), np.int16), fillvalue=np.nan),
     ValueError, "could not cast `fillvalue` directly to the output type"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), fillvalue="a"), ValueError, "complex"),
    (lambda: fastconv.filter2d(np.ones((5, 5)), np.ones((2, 2)), convolve=1), TypeError,
     "convolve must be a bool"),
]


@pytest.mark.parametrize("call,exc,words", FILTER2D_ERRORS)
def test_filter2d_errors(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W", [63, 64, 65, 130, 200])
def test_wide_rows_register_blocks(dtype, W, rng):
    """Rows of 64+ outputs take the kernel's register blocks (then the tail)."""
    a = rng.standard_normal((9, W))
    k = rng.standard_normal((3, 7))
    a[4, 70 % W] = np.nan
    for boundary in ("fill", "symm", "wrap"):
        for mode in MODES:
            got = fs.convolve2d(a.astype(dtype), k.astype(dtype), mode, boundary, fillvalue=-1.5)
            want = ss.convolve2d(a, k, mode, boundary, fillvalue=-1.5)
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * 40 if dtype == np.float32 else 1e-11,
                                       equal_nan=True)


def test_concurrent_calls_and_fresh_outputs(rng):
    """Concurrent calls (the GIL is released in the kernel, whose row buffers are per
    thread) give each caller its own result, and results never alias each other."""
    from concurrent.futures import ThreadPoolExecutor

    images = [rng.standard_normal((300, 300)).astype(np.float32) for _ in range(6)]
    k = rng.standard_normal((5, 5)).astype(np.float32)
    want = [ss.correlate2d(x.astype(np.float64), k.astype(np.float64), "same", "symm") for x in images]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda x: fs.correlate2d(x, k, "same", "symm"), images * 3))
    for i, g in enumerate(got):
        np.testing.assert_allclose(g, want[i % 6], rtol=0, atol=1e-4)
    first = fs.correlate2d(images[0], k, "same", "symm")
    kept = first.copy()
    fs.correlate2d(images[1], k, "same", "symm")
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex128, np.int16])
def test_read_only_and_byte_swapped_inputs(dtype, rng):
    a = make(rng, (6, 70), dtype, False, False, "C")
    k = make(rng, (3, 2), dtype, False, False, "C")
    want = ss.correlate2d(a, k, "same", "symm")
    ro_a, ro_k = a.copy(), k.copy()
    ro_a.flags.writeable = ro_k.flags.writeable = False
    swapped = a.astype(a.dtype.newbyteorder(">" if a.dtype.byteorder != ">" else "<"))
    for x, y in ((ro_a, ro_k), (swapped, k)):
        got = fs.correlate2d(x, y, "same", "symm")
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)


# ---- the single-plane kernel itself (_kernels/_filter): blocks, strips, paths, threads ----

def _extended_ref(x, kh, kw, top, bottom, left, right, mode, fill):
    """Planes x (N, H, W) extended with np.pad, then the 'valid' correlation as a float64
    sum over windows (independent of the kernel's row tables and strips)."""
    from numpy.lib.stride_tricks import sliding_window_view
    pad = ((0, 0), (top, bottom), (left, right))
    xe = np.pad(x, pad, "constant", constant_values=fill) if mode == "fill" else np.pad(x, pad, mode)
    return lambda k: np.einsum("nhwij,ij->nhw", sliding_window_view(xe.astype(np.float64), k.shape, axis=(1, 2)),
                               k.astype(np.float64))


# (H, W, kh, kw, top, left): fewer rows than a register block (4) or a task (32), widths below
# one vector (16 floats / 8 doubles), widths not a multiple of a block (64 / 32), the fixed
# 3x3 blocks, kernels wider than the plane (every column in the border strips), no interior.
KERNEL_CASES = [(1, 1, 1, 1, 0, 0), (2, 5, 3, 3, 1, 1), (3, 7, 3, 3, 1, 1), (5, 15, 3, 3, 1, 1),
                (7, 17, 3, 3, 2, 0), (33, 65, 3, 3, 1, 1), (4, 64, 3, 3, 1, 1), (37, 129, 5, 5, 2, 2),
                (6, 9, 5, 4, 2, 1), (40, 70, 7, 7, 3, 3), (3, 200, 1, 9, 0, 4), (65, 3, 9, 1, 4, 0),
                (5, 5, 11, 13, 10, 12), (9, 33, 15, 15, 7, 7), (2, 2, 3, 3, 2, 2), (70, 31, 2, 2, 1, 0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", KERNEL_CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("mode", ["fill", "symmetric", "wrap"])
def test_kernel_blocks_and_strips_match_windows(case, mode, dtype, rng):
    """correlate_extended (row tables + border strips) and correlate_valid (pre-extended
    planes) on every code path: the AVX-512 blocks where the CPU has them, the portable
    loops always, at 1 and 2 threads: all equal to the window sum; the two thread counts
    bit for bit."""
    from fastconv._kernels import _filter
    from fastconv.functional.filter import source_map
    H, W, kh, kw, top, left = case
    bottom, right = kh - 1 - top, kw - 1 - left
    x = rng.standard_normal((3, H, W)).astype(dtype)
    k = rng.standard_normal((kh, kw)).astype(dtype)
    fill = -1.25
    rule = {"fill": "fill", "symmetric": "symm", "wrap": "wrap"}[mode]
    want = _extended_ref(x, kh, kw, top, bottom, left, right, mode, fill)(k)
    rmap, cmap = source_map(H, top, bottom, rule), source_map(W, left, right, rule)
    xe = np.ascontiguousarray(np.pad(x, ((0, 0), (top, bottom), (left, right)), "constant", constant_values=fill)
                              if mode == "fill" else np.pad(x, ((0, 0), (top, bottom), (left, right)), mode))
    atol = 1e-4 * kh * kw if dtype == np.float32 else 1e-11 * kh * kw
    paths = [False, True] if _filter.AVX512_AVAILABLE else [False]
    previous, work = _filter.use_avx512(), _filter.min_work_per_thread(1)  # 2 threads: 2 threads
    try:
        for avx in paths:
            _filter.use_avx512(avx)
            by_threads = []
            for threads in (1, 2):
                y = np.full((3, H, W), np.nan, dtype)
                _filter.correlate_extended(x, rmap, cmap, left, dtype(fill), k, y, threads)
                np.testing.assert_allclose(y, want, rtol=0, atol=atol)
                v = np.full((3, H, W), np.nan, dtype)
                _filter.correlate_valid(xe, k, v, threads)
                np.testing.assert_allclose(v, want, rtol=0, atol=atol)
                by_threads.append(y)
            np.testing.assert_array_equal(by_threads[0], by_threads[1])
    finally:
        _filter.use_avx512(previous)
        _filter.min_work_per_thread(work)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_paths_agree_and_propagate_nan(dtype, rng):
    """The AVX-512 blocks and the portable loops sum the same taps in the same order: equal
    to rounding on a large plane with a NaN and an inf in it (both propagate to exactly the
    outputs whose windows hold them, as in SciPy), deterministic over repeats and thread
    counts (1 and 2 threads give the same bits)."""
    from fastconv._kernels import _filter
    x = rng.standard_normal((300, 333)).astype(dtype)
    x[100, 5] = np.nan
    x[7, 300] = np.inf
    kernels = [rng.standard_normal((3, 3)).astype(dtype), rng.standard_normal((5, 6)).astype(dtype)]
    tol_ = 1e-4 if dtype == np.float32 else 1e-11
    previous, work = _filter.use_avx512(), _filter.min_work_per_thread(1)
    try:
        for k in kernels:
            want = ss.correlate2d(x.astype(np.float64), k.astype(np.float64), "same", "symm")
            by_path = []
            for avx in ([True, False] if _filter.AVX512_AVAILABLE else [False]):
                _filter.use_avx512(avx)
                runs = []
                for threads in (1, 2, 2):
                    fastconv.set_num_threads(threads)
                    runs.append(fs.correlate2d(x, k, "same", "symm"))
                for r in runs[1:]:
                    np.testing.assert_array_equal(r, runs[0])
                np.testing.assert_array_equal(np.isnan(runs[0]), np.isnan(want))
                np.testing.assert_allclose(runs[0], want, rtol=tol_, atol=tol_ * 30, equal_nan=True)
                by_path.append(runs[0])
            np.testing.assert_allclose(by_path[0], by_path[-1], rtol=tol_, atol=tol_, equal_nan=True)
    finally:
        _filter.use_avx512(previous)
        _filter.min_work_per_thread(work)
        fastconv.set_num_threads(None)
