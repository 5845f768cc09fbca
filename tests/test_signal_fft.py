"""method="fft" / "direct" / "auto" of fastconv.signal.correlate2d/convolve2d and filter2d:
the FFT path against the direct path, scipy.signal.correlate2d/convolve2d (float64 reference)
and scipy.signal.fftconvolve, within the FFT's normwise error bound
(eps * log2(P) * ||x_ext||_2 * ||k||_1, bounded here by sizes and maxima); the 'auto' rule's
static choice (FASTCONV_AUTOTUNE=off), NaN handling, chunked stacks, the measured cost plan,
and bad arguments."""
import math

import numpy as np
import pytest
import scipy.signal as ss
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.signal as fs
from fastconv.functional import _autotune, _fft
from fastconv.functional.filter import output_window, source_map

FUNCS = {"correlate2d": (ss.correlate2d, fs.correlate2d), "convolve2d": (ss.convolve2d, fs.convolve2d)}
MODES = ["full", "same", "valid"]
BOUNDARIES = ["fill", "pad", "wrap", "circular", "symm", "symmetric"]
DTYPES = [np.float32, np.float64, np.complex64, np.complex128]
WIDE = {np.dtype(np.float32): np.float64, np.dtype(np.complex64): np.complex128}


def rand(rng, shape, dtype):
    a = rng.standard_normal(shape) * np.exp(rng.standard_normal(shape))
    if np.dtype(dtype).kind == "c":
        a = a + 1j * rng.standard_normal(shape)
    return a.astype(dtype)


def fft_bound(a, k, fill, dtype, mode="full"):
    """An upper bound of the FFT path's max error: eps * log2(P) * ||x_ext||_2 * ||k||_1 with
    ||x_ext||_2 <= sqrt(Hp*Wp) * max(|x|, |fill|) and P <= 4*Hp*Wp (Hp, Wp: the extension)."""
    eps = np.finfo(np.dtype(dtype)).eps
    H, W = a.shape[-2:]
    kh, kw = k.shape
    Hp, Wp = H + 2 * kh, W + 2 * kw
    amax = max(float(np.max(np.abs(a), initial=0)), abs(complex(fill)))
    return eps * math.log2(4 * Hp * Wp + 2) * math.sqrt(Hp * Wp) * amax * float(np.abs(k).sum())


def wide_reference(sfunc, a, k, mode, boundary, fill):
    dt = np.result_type(a, k)
    wide = WIDE.get(dt, dt)
    return sfunc(a.astype(wide), k.astype(wide), mode, boundary, fill)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 15), st.integers(1, 15),
       st.sampled_from(sorted(FUNCS)), st.sampled_from(MODES), st.sampled_from(BOUNDARIES),
       st.sampled_from([0.0, 0.75, -3.0]), st.sampled_from(range(len(DTYPES))), st.integers(0, 2**32 - 1))
def test_fft_matches_direct_and_scipy(H, W, kh, kw, name, mode, boundary, fill, dt_i, seed):
    """Random shapes (even kernels, kernels larger than the image, the 'valid' swap), every
    mode and boundary spelling, fill values, float32/64 and complex64/128."""
    rng = np.random.default_rng(seed)
    dtype = DTYPES[dt_i]
    a, k = rand(rng, (H, W), dtype), rand(rng, (kh, kw), dtype)
    sfunc, ffunc = FUNCS[name]
    if mode == "valid" and not (H >= kh and W >= kw or kh >= H and kw >= W):
        with pytest.raises(ValueError):
            ffunc(a, k, mode, boundary, fill, method="fft")
        return
    got = ffunc(a, k, mode, boundary, fill, method="fft")
    direct = ffunc(a, k, mode, boundary, fill, method="direct")
    auto = ffunc(a, k, mode, boundary, fill)  # small: direct by the static rule
    want = wide_reference(sfunc, a, k, mode, boundary, fill)
    assert got.dtype == direct.dtype == np.result_type(a, k) and got.shape == want.shape
    np.testing.assert_array_equal(auto, direct)
    big, small = (a, k) if a.size >= k.size else (k, a)
    bound = fft_bound(big, small, fill if boundary in ("fill", "pad") else 0, dtype)
    bound += 4 * np.finfo(np.dtype(dtype)).eps * float(np.abs(want).max(initial=0))
    np.testing.assert_allclose(got, want, rtol=0, atol=bound)
    np.testing.assert_allclose(got, direct, rtol=0, atol=2 * bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_fft_matches_fftconvolve(dtype, mode, rng):
    """boundary 'fill' with 0: scipy.signal.fftconvolve computes the same convolution (even
    kernel) and correlation (with the reversed conjugate odd kernel)."""
    a, k = rand(rng, (37, 29), dtype), rand(rng, (9, 6), dtype)
    got = fs.convolve2d(a, k, mode, method="fft")
    want = ss.fftconvolve(a.astype(WIDE.get(np.dtype(dtype), dtype)), k.astype(WIDE.get(np.dtype(dtype), dtype)), mode)
    np.testing.assert_allclose(got, want, rtol=0, atol=fft_bound(a, k, 0, dtype))
    k = k[:, :5]  # odd: correlate2d's 'same' window is fftconvolve's for odd kernels only
    got = fs.correlate2d(a, k, mode, method="fft")
    want = ss.fftconvolve(a.astype(WIDE.get(np.dtype(dtype), dtype)), k[::-1, ::-1].conj(), mode)
    np.testing.assert_allclose(got, want, rtol=0, atol=fft_bound(a, k, 0, dtype))


@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
@pytest.mark.parametrize("convolve", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_filter2d_stack_in_chunks(boundary, convolve, dtype, rng, monkeypatch):
    """A (2, 3, H, W) stack through the FFT path in chunks of one plane (CHUNK_BYTES tiny)
    and in one chunk: each plane equal to a SciPy call (float64 reference)."""
    x = rand(rng, (2, 3, 23, 18), dtype)
    k = rand(rng, (7, 4), dtype)
    sfunc = ss.convolve2d if convolve else ss.correlate2d
    want = np.stack([np.stack([wide_reference(sfunc, p, k, "same", boundary, 0.5) for p in row]) for row in x])
    whole = fastconv.filter2d(x, k, "same", boundary, 0.5, convolve=convolve, method="fft")
    monkeypatch.setattr(_fft, "CHUNK_BYTES", 1)
    chunked = fastconv.filter2d(x, k, "same", boundary, 0.5, convolve=convolve, method="fft")
    np.testing.assert_array_equal(chunked, whole)
    assert whole.shape == (2, 3, 23, 18) and whole.dtype == np.dtype(dtype)
    np.testing.assert_allclose(whole, want, rtol=0, atol=fft_bound(x, k, 0.5, dtype))


@pytest.mark.parametrize("rule", ["fill", "wrap", "symm", "mirror", "nearest"])
def test_every_source_map_rule(rule, rng):
    """The FFT path reads the direct kernel's source maps, so every rule they define agrees
    (including rules added for ndimage)."""
    from fastconv.functional.filter import correlate_planes

    try:
        source_map(5, 2, 2, rule)
    except Exception:  # noqa: BLE001 - a rule this build does not define
        pytest.skip(f"source_map has no rule {rule!r}")
    x = rng.standard_normal((2, 9, 7))
    k = rng.standard_normal((12, 5))  # taller than the planes: repeated extension
    for mode in ("full", "same"):
        a = correlate_planes(x, k, mode, rule, np.asarray(0.25), False, np.dtype(np.float64), "direct")
        b = correlate_planes(x, k, mode, rule, np.asarray(0.25), False, np.dtype(np.float64), "fft")
        np.testing.assert_allclose(b, a, rtol=0, atol=fft_bound(x, k, 0.25, np.float64))


@pytest.mark.parametrize("threads", [2], indirect=True)
def test_two_threads(threads, rng):
    a = rng.standard_normal((64, 80)).astype(np.float32)
    k = rng.standard_normal((17, 17)).astype(np.float32)
    got = fs.correlate2d(a, k, "same", "symm", method="fft")
    want = ss.correlate2d(a.astype(np.float64), k.astype(np.float64), "same", "symm")
    np.testing.assert_allclose(got, want, rtol=0, atol=fft_bound(a, k, 0, np.float32))


def test_nan_spreads_by_fft_stays_local_by_auto(rng):
    """By FFT a NaN makes its whole plane NaN; 'auto' checks finiteness when it would pick
    the FFT and goes direct, so NaN stays local as in SciPy."""
    a = rng.standard_normal((256, 256)).astype(np.float32)
    k = rng.standard_normal((63, 63)).astype(np.float32)
    a[100, 100] = np.nan
    want = np.isnan(ss.correlate2d(a.astype(np.float64), k.astype(np.float64), "same"))
    assert 0 < want.sum() < want.size
    assert np.isnan(fs.correlate2d(a, k, "same", method="fft")).all()
    np.testing.assert_array_equal(np.isnan(fs.correlate2d(a, k, "same")), want)
    np.testing.assert_array_equal(np.isnan(fs.correlate2d(a, k, "same", method="direct")), want)
    # a non-finite fill value, used by boundary 'fill': direct as well
    b = np.ones((256, 256), np.float32)
    got = fs.correlate2d(b, np.ones((63, 63), np.float32), "same", "fill", np.inf)
    assert np.isfinite(got[128, 128]) and np.isinf(got[0, 0])


def _auto_picks_fft(shape, kshape, dtype=np.float32, mode="same", boundary="symm", finite=True):
    x = np.ones(shape, dtype)
    if not finite:
        x.flat[0] = np.nan
    k = np.ones(kshape, dtype)
    rule = {"symm": "symm", "fill": "fill", "wrap": "wrap"}[boundary]
    oh, t, b = output_window(mode, shape[-2], kshape[0], False)
    ow, left, r = output_window(mode, shape[-1], kshape[1], False)
    x3 = x.reshape((-1,) + shape[-2:])
    return _fft.use_fft("auto", x3, k, source_map(shape[-2], t, b, rule), source_map(shape[-1], left, r, rule),
                        np.zeros((), dtype), np.dtype(dtype), (oh, ow))


STATIC_CASES = [  # (plane(s), kernel, dtype, FFT?) under FASTCONV_AUTOTUNE=off
    ((2048, 2048), (3, 3), np.float32, False),
    ((2048, 2048), (15, 15), np.float32, False),
    ((2048, 2048), (41, 41), np.float32, True),
    ((2048, 2048), (63, 63), np.float64, True),
    ((256, 256), (63, 63), np.float32, True),
    ((8, 256, 256), (63, 63), np.float32, True),
    ((32, 32), (31, 31), np.float32, False),   # per-call overhead of the FFT path dominates
    ((512, 512), (5, 5), np.complex64, False),
    ((512, 512), (63, 63), np.complex128, True),
]


@pytest.mark.parametrize("shape,kshape,dtype,fft", STATIC_CASES)
def test_auto_static_rule(shape, kshape, dtype, fft):
    """FASTCONV_AUTOTUNE=off (the test suite): the static constants decide, deterministically;
    the choice agrees with the cost estimates it is derived from."""
    assert _autotune.get_autotune() == "off"
    assert _fft.cost_constants(dtype) == (_fft.STATIC_COSTS[_fft._real_name(dtype)], "static")
    for threads in (1, 2):  # clear cases: the same on one and two threads
        with fastconv.num_threads(threads):
            assert _auto_picks_fft(shape, kshape, dtype) is fft
            assert _auto_picks_fft(shape, kshape, dtype, finite=False) is False


def test_auto_never_fft_for_integers(rng):
    a = rng.integers(-100, 100, (256, 256)).astype(np.int32)
    k = rng.integers(-3, 4, (63, 63)).astype(np.int32)
    got = fs.correlate2d(a, k, "same", method="auto")  # 'auto' stays direct for integers: exact
    np.testing.assert_array_equal(got, ss.correlate2d(a, k, "same"))
    with pytest.raises(ValueError, match="method='fft' needs float"):
        fs.correlate2d(a, k, "same", method="fft")


def test_auto_picks_fft_and_matches(rng):
    a = rng.standard_normal((256, 256))
    k = rng.standard_normal((63, 63))
    assert _auto_picks_fft((256, 256), (63, 63), np.float64)
    got = fs.convolve2d(a, k, "same", "wrap", method="auto")
    np.testing.assert_array_equal(got, fs.convolve2d(a, k, "same", "wrap", method="fft"))
    direct = fs.convolve2d(a, k, "same", "wrap")  # the default: 'direct', as SciPy
    np.testing.assert_array_equal(direct, fs.convolve2d(a, k, "same", "wrap", method="direct"))
    np.testing.assert_allclose(got, ss.convolve2d(a, k, "same", "wrap"), rtol=0, atol=fft_bound(a, k, 0, np.float64))


@pytest.mark.parametrize("shape,kshape,mode,boundary", [
    ((0, 5), (3, 3), "full", "fill"), ((4, 0), (2, 2), "same", "fill"), ((3, 4), (0, 2), "full", "fill"),
    ((0, 0), (1, 1), "valid", "symm"), ((5, 5), (5, 5), "valid", "wrap")])
@pytest.mark.parametrize("name", sorted(FUNCS))
def test_empty_and_edge_shapes(shape, kshape, mode, boundary, name):
    sfunc, ffunc = FUNCS[name]
    a = np.arange(float(np.prod(shape))).reshape(shape)
    k = np.ones(kshape)
    want = sfunc(a, k, mode, boundary)
    got = ffunc(a, k, mode, boundary, method="fft")
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * (1 + np.abs(want).max(initial=0)))
    assert fastconv.filter2d(np.zeros((0, 4, 4)), np.ones((3, 3)), method="fft").shape == (0, 4, 4)


def test_symm_full_empty_axis_is_a_value_error():
    with pytest.raises(ValueError, match="empty axis"):
        fs.correlate2d(np.zeros((0, 4)), np.ones((3, 3)), "full", "symm", method="fft")


def test_measured_cost_plan_is_listed_and_persisted(tmp_path, monkeypatch):
    """Under "measure" the constants are measured once (1 thread, CPU time), listed by
    fastconv.plans() and kept in the plan file; "cache" reuses them, "off" ignores them; a
    malformed entry falls back to the static constants."""
    monkeypatch.setenv("FASTCONV_PLAN_CACHE", str(tmp_path / "plans.json"))
    _autotune.clear_plans()
    calls = []
    fake = {"op": "filter-cost", "algorithm": "cost-model", "table": "static", "times_us": {},
            "ns": {"d0": 1.0, "a": 0.001, "c": 0.0, "f0": 1.0, "b": 10.0}, "timing": "fake"}
    monkeypatch.setattr(_fft, "calibrate", lambda name: calls.append(name) or dict(fake))
    try:
        fastconv.set_autotune("measure")
        costs, source = _fft.cost_constants(np.complex64)
        assert source == "plan" and costs == (1.0, 0.001, 0.0, 1.0, 10.0) and calls == ["float32"]
        _fft.cost_constants(np.float32)
        assert calls == ["float32"]  # once per process and dtype
        key = f"filter-cost float32 {_autotune._isa_in_use()} tiled"
        assert fastconv.plans()[key]["source"] == "measured"
        # a borderline problem (static estimates within CLEAR_FACTOR) consults the plan
        # (on one thread: the direct estimate is divided by the thread count)
        with fastconv.num_threads(1):
            assert not _auto_picks_fft((512, 512), (27, 27))  # the fake constants: FFT expensive
            fastconv.set_autotune("off")
            assert _auto_picks_fft((512, 512), (27, 27))  # the static constants: FFT
        fastconv.set_autotune("measure")
        _autotune.clear_plans()
        fastconv.set_autotune("cache")
        assert _fft.cost_constants(np.float32)[1] == "plan"
        assert fastconv.plans()[key]["source"] == "file" and calls == ["float32"]
        assert _fft.cost_constants(np.float64)[1] == "static"  # "cache": no plan, no measuring
        fastconv.set_autotune("off")
        assert _fft.cost_constants(np.float32)[1] == "static"
        fastconv.set_autotune("measure")
        _autotune.clear_plans()
        _autotune._other_memo[key] = dict(fake, ns={"a": -1})
        assert _fft.cost_constants(np.float32)[1] == "static"
    finally:
        fastconv.set_autotune(None)
        _autotune.clear_plans()


def test_calibrate_measures_positive_constants():
    e = _fft.calibrate("float64", reps=1)
    assert e["op"] == "filter-cost" and e["algorithm"] == "cost-model"
    assert _fft._valid_costs(e) is not None and set(e["times_us"]) >= {"direct_15x15", "fft_15x15"}
    assert _autotune._entry_ok("filter-cost float64 x", e)


BAD_METHOD = ["FFT", "", None, 1, ["fft"], "winograd"]


@pytest.mark.parametrize("method", BAD_METHOD)
@pytest.mark.parametrize("func", [fs.correlate2d, fs.convolve2d, fastconv.filter2d])
def test_bad_method_lists_the_choices(func, method):
    with pytest.raises(ValueError, match=r"method must be one of 'auto', 'direct', 'fft'"):
        func(np.ones((4, 4)), np.ones((2, 2)), method=method)


@pytest.mark.parametrize("a,k", [(np.ones((4, 4), np.int16), np.ones((2, 2), np.int16)),
                                 (np.ones((4, 4), np.uint8), np.ones((2, 2), np.uint8)),
                                 (np.ones((4, 4), np.longdouble), np.ones((2, 2)))])
def test_fft_refuses_exact_and_unsupported_dtypes(a, k):
    funcs = (fs.correlate2d, fs.convolve2d) + ((fastconv.filter2d,) if a.dtype != np.longdouble else ())
    for func in funcs:
        with pytest.raises(ValueError, match="method='fft' needs float32/float64/complex64/complex128"):
            func(a, k, method="fft")
        func(a, k, method="direct")


def test_scipy_positional_contract_unchanged():
    a, k = np.arange(12.0).reshape(3, 4), np.ones((2, 2))
    np.testing.assert_array_equal(fs.correlate2d(a, k, "same", "wrap", 0), ss.correlate2d(a, k, "same", "wrap", 0))
    with pytest.raises(TypeError):
        fs.correlate2d(a, k, "same", "wrap", 0, "fft")  # method is keyword-only


TILED = [  # (stack shape, kernel, dtype, boundary, mode, forced TILE_SIDES)
    ((50, 61), (9, 7), np.float64, "symm", "same", (16,)),      # tile edges inside the kernel's reach
    ((2, 37, 45), (11, 4), np.float32, "wrap", "full", (16, 24)),
    ((3, 1, 700), (1, 9), np.float64, "fill", "same", (16,)),   # tiny axis: one tile that way
    ((29, 33), (12, 12), np.complex128, "fill", "valid", (16,)),
    ((2, 61, 47), (15, 3), np.complex64, "symm", "same", (24,)),
    ((5, 70), (31, 2), np.float64, "symm", "full", (32,)),       # kernel taller than the plane
]


@pytest.mark.parametrize("shape,kshape,dtype,boundary,mode,sides", TILED)
@pytest.mark.parametrize("fill", [0.0, 1.5])
def test_tiled_overlap_save(shape, kshape, dtype, boundary, mode, sides, fill, rng, monkeypatch):
    """Small forced tiles (many tiles, partial last tiles, tile batches of one and several,
    chunks of planes): equal to scipy.signal (float64 reference) within the FFT bound, and
    the tiled path really runs."""
    monkeypatch.setattr(_fft, "TILE_SIDES", sides)
    monkeypatch.setattr(_fft, "TILE_OVERHEAD", 0.0)
    monkeypatch.setattr(_fft, "LINE_OVERHEAD", 0.0)
    monkeypatch.setattr(_fft, "CACHE_BYTES", max(sides) ** 2 * 16)  # only the tiles in cache
    monkeypatch.setattr(_fft, "BIG_FACTOR", 1e3)
    _fft.tile_plan.cache_clear()
    calls = []
    real = _fft._correlate_tiled
    monkeypatch.setattr(_fft, "_correlate_tiled", lambda *a: calls.append(a[6]) or real(*a))
    try:
        x, k = rand(rng, shape, dtype), rand(rng, kshape, dtype)
        planes = x.reshape((-1,) + shape[-2:])
        want = np.stack([wide_reference(ss.correlate2d, p, k, mode, boundary, fill) for p in planes])
        got = fastconv.filter2d(x, k, mode, boundary, fill, method="fft")
        assert calls and calls[0] != want.shape[-2:]
        assert got.shape == x.shape[:-2] + want.shape[-2:] and got.dtype == np.dtype(dtype)
        np.testing.assert_allclose(got.reshape(want.shape), want, rtol=0, atol=fft_bound(x, k, fill, dtype))
        monkeypatch.setattr(_fft, "BATCH_BYTES", 1)  # one tile per worker and transform
        monkeypatch.setattr(_fft, "CHUNK_BYTES", 1)  # one plane per extension
        np.testing.assert_allclose(fastconv.filter2d(x, k, mode, boundary, fill, method="fft"), got,
                                   rtol=0, atol=2 * fft_bound(x, k, fill, dtype))
    finally:
        _fft.tile_plan.cache_clear()


def test_tile_plan_covers_the_output():
    """Every plan's tiles cover the output: T = M - k + 1 >= 1, M a transform side, and the
    untiled plan uses the whole transform."""
    for out, k in [((2048, 2048), (31, 31)), ((512, 300), (5, 63)), ((10, 4000), (9, 9)), ((7, 7), (3, 3))]:
        whole = (out[0] + k[0] + 1, out[1] + k[1] + 1)
        (t1, t2), (m1, m2), (per_plane, kern) = _fft.tile_plan(out, k, whole, False, 4)
        assert per_plane > 0 and kern > 0
        if (t1, t2) == out:
            assert (m1, m2) == whole
        else:
            assert 1 <= t1 <= out[0] and 1 <= t2 <= out[1]
            assert m1 >= t1 + k[0] - 1 and m2 >= t2 + k[1] - 1


@pytest.mark.parametrize("rule", ["fill", "wrap", "symm", "mirror", "nearest"])
@pytest.mark.parametrize("H,top,bottom", [(1, 0, 0), (1, 3, 2), (2, 5, 5), (5, 2, 2), (17, 15, 15), (4, 30, 30)])
def test_extend_into_block_copies(rule, H, top, bottom, rng):
    """The run-wise block copy of the extension equals the gathered one (np.take through the
    maps) for every rule, repeated extensions included, with zeros beyond."""
    try:
        rmap = source_map(H, top, bottom, rule)
        cmap = source_map(H + 2, bottom, top, rule)
    except Exception:  # noqa: BLE001 - a rule this build does not define
        pytest.skip(f"source_map has no rule {rule!r}")
    x = rng.standard_normal((2, H, H + 2))
    dst = np.full((2, rmap.size + 2, cmap.size + 3), np.nan)
    _fft._extend_into(dst, x, rmap, cmap, 0.5)
    want = np.where((rmap >= 0)[:, None] & (cmap >= 0)[None], x[:, np.maximum(rmap, 0)][:, :, np.maximum(cmap, 0)], 0.5)
    np.testing.assert_array_equal(dst[:, :rmap.size, :cmap.size], want)
    assert not dst[:, rmap.size:].any() and not dst[:, :, cmap.size:].any()


def test_auto_early_exit_skips_the_plan(monkeypatch):
    """Few taps or a direct estimate under the FFT's fixed cost: 'auto' decides without the
    plan (the NumPy passes over the maps)."""
    def boom(*a):
        raise AssertionError("planned")

    monkeypatch.setattr(_fft, "_plan", boom)
    assert not _auto_picks_fft((4096, 4096), (5, 5))
    assert not _auto_picks_fft((32, 32), (9, 9), np.float64)
    assert not _auto_picks_fft((32, 32), (3, 3), np.complex128)
    with pytest.raises(AssertionError, match="planned"):
        _auto_picks_fft((2048, 2048), (41, 41))


def test_auto_switches_later_on_more_threads():
    """The direct kernel scales with threads and scipy.fft's tiles barely do: the static rule
    divides the direct estimate by the thread count, so a kernel that is FFT-cheaper on one
    thread can be direct-cheaper on two (2048², 21×21, float32)."""
    assert fastconv.get_autotune() == "off"
    with fastconv.num_threads(1):
        one = _auto_picks_fft((2048, 2048), (21, 21), np.float32)
    with fastconv.num_threads(2):
        two = _auto_picks_fft((2048, 2048), (21, 21), np.float32)
        big = _auto_picks_fft((2048, 2048), (41, 41), np.float32)
    assert one and not two and big
