"""fastconv.ndimage against scipy.ndimage (values, dtypes, in-place outputs, errors: same type,
same message) and against an independent NumPy reference (np.pad + a tap loop)."""
import re
import warnings

import numpy as np
import pytest
import scipy.ndimage as nd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ndimage_correlate_ref, tol
from test_signal import outcome  # (result, None) or (None, (exception type, message))

import fastconv.ndimage as fn

MODES = list(fn.MODES)  # every mode name and alias
FUNCS = ["correlate", "convolve"]


def scipy_reliable(mode, shape, kshape, origin):
    """SciPy's n-D correlate reads outside its buffer in 'reflect' when an extension reaches
    4x the axis (values like 1e-322 appear): there only the reference is compared."""
    if mode not in ("reflect", "grid-mirror"):
        return True
    origin = [origin] * len(shape) if np.isscalar(origin) else origin
    for n, k, o in zip(shape, kshape, origin):
        before = k // 2 + o
        if max(before, k - 1 - before) >= 4 * n:
            return False
    return True


def assert_same(got, want, rtol):
    """Same dtype and shape; equal integers, floats within ``rtol`` (a float or tol(dtype))."""
    assert got.dtype == want.dtype and got.shape == want.shape
    if want.dtype.kind in "fc":
        kw = rtol if isinstance(rtol, dict) else {"rtol": rtol, "atol": rtol}
        np.testing.assert_allclose(got, want, **kw)
    else:
        np.testing.assert_array_equal(got, want)


def random_origin(rng, kshape):
    return tuple(int(rng.integers(-(k // 2), (k - 1) // 2 + 1)) for k in kshape)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("mode", MODES)
def test_correlate_random_shapes_against_scipy_and_reference(name, mode):
    rng = np.random.default_rng(abs(hash((name, mode))) % 2**32)
    for _ in range(40):
        shape = tuple(int(v) for v in rng.integers(1, 9, 2))
        if rng.random() < 0.3:
            shape = (1, shape[1]) if rng.random() < 0.5 else (shape[0], 1)
        kshape = tuple(int(v) for v in rng.integers(1, 12, 2))  # odd, even, larger than the image
        x = rng.standard_normal(shape)
        w = rng.standard_normal(kshape)
        if rng.random() < 0.3:
            w[rng.random(kshape) < 0.4] = 0
        origin = random_origin(rng, kshape)
        cval = float(rng.choice([0.0, 1.5, -3.0]))
        got = getattr(fn, name)(x, w, mode=mode, cval=cval, origin=origin)
        ref_w = w[::-1, ::-1] if name == "convolve" else w
        ref_o = tuple(-o - (1 - k % 2) for o, k in zip(origin, kshape)) if name == "convolve" else origin
        np.testing.assert_allclose(got, ndimage_correlate_ref(x, ref_w, mode, cval, ref_o), rtol=1e-12, atol=1e-12)
        if scipy_reliable(mode, shape, kshape, ref_o):
            want = getattr(nd, name)(x, w, mode=mode, cval=cval, origin=origin)
            assert_same(got, want, 1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_one_dimensional_functions_against_scipy(mode):
    rng = np.random.default_rng(7)
    for _ in range(30):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 7, ndim))
        x = rng.standard_normal(shape)
        k = int(rng.integers(1, 15))
        w = rng.standard_normal(k)
        axis = int(rng.integers(-ndim, ndim))
        o = int(rng.integers(-(k // 2), (k - 1) // 2 + 1))
        for name in ("correlate1d", "convolve1d"):
            want = getattr(nd, name)(x, w, axis, mode=mode, cval=0.5, origin=o)
            assert_same(getattr(fn, name)(x, w, axis, mode=mode, cval=0.5, origin=o), want, 1e-12)
        if ndim == 1 and scipy_reliable(mode, shape, (k,), o):  # 1-D correlate on the engine too
            assert_same(fn.correlate(x, w, mode=mode, origin=o), nd.correlate(x, w, mode=mode, origin=o), 1e-12)


@pytest.mark.parametrize("name", ["sobel", "prewitt"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.int16, np.int64])
def test_sobel_prewitt_against_scipy(name, dtype):
    rng = np.random.default_rng(3)
    for _ in range(15):
        ndim = int(rng.integers(1, 4))
        shape = tuple(int(v) for v in rng.integers(1, 8, ndim))
        x = (rng.standard_normal(shape) * 50).astype(dtype)
        axis = int(rng.integers(-ndim, ndim))
        mode = list(rng.choice(MODES, ndim)) if rng.random() < 0.5 else str(rng.choice(MODES))
        for output in (None, np.float64, np.int32):
            want = getattr(nd, name)(x, axis, output=output, mode=mode, cval=2.0)
            got = getattr(fn, name)(x, axis, output=output, mode=mode, cval=2.0)
            assert_same(got, want, tol(np.float32) if got.dtype == np.float32 else 1e-12)


def test_grid_aliases_equal_plain_modes_in_scipy():
    x = np.random.default_rng(0).standard_normal((5, 4))
    w = np.arange(12.0).reshape(3, 4)
    for alias, plain in (("grid-wrap", "wrap"), ("grid-constant", "constant"), ("grid-mirror", "reflect")):
        np.testing.assert_array_equal(nd.correlate(x, w, mode=alias, cval=2), nd.correlate(x, w, mode=plain, cval=2))
        np.testing.assert_array_equal(fn.correlate(x, w, mode=alias, cval=2), fn.correlate(x, w, mode=plain, cval=2))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_axes_with_long_extensions(n):
    """Repeated reflection, mirror of one sample (SciPy: the sample), wrap many periods."""
    x = np.arange(1.0, n + 1)[None, :] * np.array([[1.0], [10.0]])
    for mode in ("mirror", "nearest", "wrap", "constant", "reflect"):
        for k in (1, 2, 5, 4 * n + 3):
            w = np.random.default_rng(k).standard_normal((1, k))
            want = nd.correlate1d(x, w[0], axis=1, mode=mode, cval=-1)  # the 1-D routine is right here
            np.testing.assert_allclose(fn.correlate(x, w, mode=mode, cval=-1), want, rtol=1e-12)


@pytest.mark.parametrize("name", FUNCS)
def test_origins_at_the_limits_and_past_them(name):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 7))
    for kshape in ((3, 4), (4, 1), (5, 2), (1, 1)):
        w = rng.standard_normal(kshape)
        lo = tuple(-(k // 2) for k in kshape)
        hi = tuple((k - 1) // 2 for k in kshape)
        for origin in (lo, hi, (lo[0], hi[1])):
            assert_same(getattr(fn, name)(x, w, origin=origin), getattr(nd, name)(x, w, origin=origin), 1e-12)
        for origin in ((lo[0] - 1, 0), (0, hi[1] + 1)):
            _, want = outcome(getattr(nd, name), x, w, origin=origin)
            with pytest.raises(want[0], match=re.escape(want[1])):
                getattr(fn, name)(x, w, origin=origin)


@pytest.mark.parametrize("in_dtype", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.int64, np.uint64,
                                      np.bool_, np.float32, np.float64])
@pytest.mark.parametrize("out_dtype", [None, np.uint8, np.int8, np.uint32, np.int64, np.uint64, np.bool_,
                                       np.float32, np.float64])
def test_output_dtypes_truncation_and_wrap_around(in_dtype, out_dtype):
    rng = np.random.default_rng(5)
    low = 0 if np.dtype(in_dtype).kind in "ub" else -120  # (huge unsigned sums: undefined casts in C)
    x = rng.integers(low, 120, (6, 5)).astype(in_dtype)
    w = rng.integers(-3, 4, (3, 2)) * np.array([1.0, 0.5, 0.25])[:, None]  # halves: truncation toward 0
    want = nd.correlate(x, w, output=out_dtype, mode="nearest")
    got = fn.correlate(x, w, output=out_dtype, mode="nearest")
    assert_same(got, want, tol(np.float32) if got.dtype == np.float32 else 1e-12)


def test_output_array_is_written_in_place_and_returned():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6))
    w = rng.standard_normal((3, 3))
    for dtype in (np.float64, np.float32, np.int16):
        out = np.zeros((5, 6), dtype)
        res = fn.correlate(x * 10, w, output=out)
        assert res is out
        np.testing.assert_allclose(out, nd.correlate(x * 10, w, output=dtype), **tol(np.float32))
    out = np.zeros((6, 5)).T  # a non-contiguous output
    assert fn.convolve(x, w, output=out) is out
    np.testing.assert_allclose(out, nd.convolve(x, w), rtol=1e-12)
    y = x.copy()  # output sharing memory with the input
    np.testing.assert_allclose(fn.correlate(y, w, output=y), nd.correlate(x, w), rtol=1e-12)
    z = x.copy()
    assert fn.sobel(z, 0, output=z) is z
    np.testing.assert_allclose(z, nd.sobel(x, 0), rtol=1e-12)
    assert fn.correlate1d(x, [1, 2], 0, output="float32").dtype == np.float32


def test_nan_under_zero_taps():
    """correlate/convolve skip |w| <= DBL_EPSILON taps (NaN stays out); the 1-D filters multiply
    every tap (NaN spreads), as SciPy."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 8))
    x[3, 4] = np.nan
    x[5, 1] = np.inf
    w = np.array([[0, 1, 0], [2, 0, -1], [0, 3, 0.0]])
    for name in FUNCS:
        for dtype in (np.float64, np.float32):
            want = getattr(nd, name)(x.astype(dtype), w)
            got = getattr(fn, name)(x.astype(dtype), w)
            np.testing.assert_allclose(got, want, **tol(dtype))
            assert np.isfinite(got).sum() == np.isfinite(want).sum() > 40
    tiny = np.array([[1e-17, 1.0, -1e-17]])
    np.testing.assert_array_equal(fn.correlate(x, tiny), nd.correlate(x, tiny))
    np.testing.assert_array_equal(fn.correlate(x, np.zeros((2, 2))), np.zeros_like(x))
    for name in ("sobel", "prewitt"):
        np.testing.assert_allclose(getattr(fn, name)(x, 0), getattr(nd, name)(x, 0), rtol=1e-12)
    np.testing.assert_allclose(fn.correlate1d(x, [1, 0, 2], 0), nd.correlate1d(x, [1, 0, 2], 0), rtol=1e-12)


def test_layouts_read_only_and_byte_swapped_inputs():
    rng = np.random.default_rng(6)
    base = rng.standard_normal((9, 12))
    w = rng.standard_normal((3, 4))
    ro = base.copy()
    ro.flags.writeable = False
    for x in (np.asfortranarray(base), base[::2, 1::3], base.T, ro, base.astype(">f8"), base.astype(">f4")):
        for name in FUNCS:
            assert_same(getattr(fn, name)(x, w, mode="mirror"), getattr(nd, name)(x, w, mode="mirror"),
                        tol(np.float32) if x.dtype.itemsize == 4 else 1e-12)
        assert_same(fn.sobel(x, 1), nd.sobel(x, 1), tol(np.float32) if x.dtype.itemsize == 4 else 1e-12)
        assert_same(fn.correlate1d(x, [1, -2, 3], 0), nd.correlate1d(x, [1, -2, 3], 0),
                    tol(np.float32) if x.dtype.itemsize == 4 else 1e-12)
    wf = np.asfortranarray(rng.standard_normal((4, 3)))[::-1]
    assert_same(fn.correlate(base, wf), nd.correlate(base, wf), 1e-12)


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (0, 0), (0,)])
def test_empty_inputs(shape):
    x = np.zeros(shape)
    w = np.ones((3,) * len(shape))
    for name in FUNCS:
        for mode in ("reflect", "wrap", "constant"):
            assert_same(getattr(fn, name)(x, w, mode=mode), getattr(nd, name)(x, w, mode=mode), 0)
    assert_same(fn.sobel(x), nd.sobel(x), 0)
    assert_same(fn.correlate1d(x, [1.0, 2.0]), nd.correlate1d(x, [1.0, 2.0]), 0)


def test_complex_input_and_weights():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 6)) + 1j * rng.standard_normal((5, 6))
    w = rng.standard_normal((3, 2)) + 1j * rng.standard_normal((3, 2))
    for name in FUNCS:
        for xi, wi, cval in ((x, w, 1 + 2j), (x.real, w, 0.5), (x, w.real, 1j), (x.astype(np.complex64), w, 0)):
            assert_same(getattr(fn, name)(xi, wi, mode="constant", cval=cval),
                        getattr(nd, name)(xi, wi, mode="constant", cval=cval), tol(np.float32))
    for name in ("correlate1d", "convolve1d"):
        assert_same(getattr(fn, name)(x, w[:, 0], 0, mode="wrap"), getattr(nd, name)(x, w[:, 0], 0, mode="wrap"), 1e-12)


def test_fallbacks_give_scipys_results():
    rng = np.random.default_rng(9)
    x3 = rng.standard_normal((3, 4, 5))
    w3 = rng.standard_normal((2, 3, 2))
    assert_same(fn.correlate(x3, w3, mode="wrap"), nd.correlate(x3, w3, mode="wrap"), 0)
    x = rng.standard_normal((4, 5))
    assert_same(fn.correlate(x, [[1.0, 2.0]], axes=(0, 1)), nd.correlate(x, [[1.0, 2.0]], axes=(0, 1)), 0)
    assert_same(fn.convolve(x, [3.0, 1.0], axes=1), nd.convolve(x, [3.0, 1.0], axes=1), 0)
    x16 = x.astype(np.float16)
    assert outcome(fn.correlate, x16, [[1.0, 2.0]])[1] == outcome(nd.correlate, x16, [[1.0, 2.0]])[1] is not None
    assert_same(fn.sobel(x.astype(complex), 0), nd.sobel(x.astype(complex), 0), 0)


def _bad_cases():
    x = np.ones((4, 5))
    w = np.ones((3, 3))
    return [
        ("correlate", (x, np.ones(3)), {}),
        ("correlate", (x, np.ones((3, 0))), {}),
        ("correlate", (x, w), {"mode": "bogus"}),
        ("correlate", (x, w), {"mode": ["reflect", "wrap"]}),
        ("correlate", (x, w), {"origin": (0, 0, 0)}),
        ("correlate", (x, w), {"origin": 2}),
        ("convolve", (x, np.ones((2, 2))), {"origin": (1, 0)}),
        ("correlate", (x, w), {"output": np.zeros((5, 4))}),
        ("correlate", (x, w), {"output": "bool_"}),
        ("correlate", (x, w), {"cval": "x"}),
        ("correlate", (x, w), {"cval": 1j}),
        ("correlate", (x.astype(np.float16), w), {}),
        ("correlate", (x, np.ones((3, 3), complex)), {"output": np.zeros((4, 5))}),
        ("correlate", (np.ones((4, 5), object), w), {}),
        ("correlate1d", (x, []), {}),
        ("correlate1d", (x, w), {}),
        ("correlate1d", (x, [1, 2, 3]), {"axis": 2}),
        ("correlate1d", (x, [1, 2, 3]), {"origin": 2}),
        ("correlate1d", (x, [1, 2, 3]), {"mode": "bogus"}),
        ("convolve1d", (x, [1, 2]), {"origin": 1}),
        ("sobel", (x,), {"mode": ["reflect"]}),
        ("sobel", (x,), {"mode": ["reflect", "bogus"]}),
        ("sobel", (x,), {"axis": 3}),
        ("prewitt", (x,), {"output": np.zeros(3)}),
    ]


@pytest.mark.parametrize("name, args, kwargs", _bad_cases())
def test_bad_inputs_raise_scipys_errors(name, args, kwargs):
    _, want = outcome(getattr(nd, name), *args, **kwargs)
    assert want is not None, "SciPy accepts this case"
    with pytest.raises(want[0]) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        getattr(fn, name)(*args, **kwargs)
    assert str(info.value).startswith(want[1])  # fastconv may append the choices


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 7), kw=st.integers(1, 7),
       mode=st.sampled_from(MODES), name=st.sampled_from(FUNCS), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float64, np.float32, np.int32, np.uint8]))
def test_hypothesis_sweep(h, w, kh, kw, mode, name, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((h, w)) * 20).astype(dtype)
    k = rng.integers(-2, 3, (kh, kw)).astype(np.float64)
    origin = random_origin(rng, (kh, kw))
    conv_o = tuple(-o - (1 - kk % 2) for o, kk in zip(origin, (kh, kw))) if name == "convolve" else origin
    if scipy_reliable(mode, (h, w), (kh, kw), conv_o):
        got = getattr(fn, name)(x, k, mode=mode, cval=3, origin=origin)
        assert_same(got, getattr(nd, name)(x, k, mode=mode, cval=3, origin=origin), tol(np.float32))


# --- method= (a fastconv extension): the FFT path against scipy.ndimage and the reference ---

@pytest.mark.parametrize("mode", ["reflect", "mirror", "nearest", "wrap", "constant"])
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fft_method_matches_scipy(mode, name, dtype):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((40, 37)).astype(dtype)
    w = rng.standard_normal((17, 12))  # even width: convolve's extra origin shift
    origin = (2, -3)
    want = getattr(nd, name)(x.astype(np.float64), w, mode=mode, cval=0.25, origin=origin).astype(dtype)
    got = getattr(fn, name)(x, w, mode=mode, cval=0.25, origin=origin, method="fft")
    direct = getattr(fn, name)(x, w, mode=mode, cval=0.25, origin=origin, method="direct")
    # the FFT's error is normwise: bound it by eps * sum|x| * sum|w| (float64 accumulation)
    bound = 64 * np.finfo(np.float64).eps * np.abs(x).sum() * np.abs(w).sum()
    assert got.dtype == want.dtype == direct.dtype
    np.testing.assert_allclose(got, want, rtol=0, atol=max(bound, float(tol(dtype)["atol"])))
    np.testing.assert_allclose(direct, want, **tol(dtype))
    auto = getattr(fn, name)(x, w, mode=mode, cval=0.25, origin=origin, method="auto")
    np.testing.assert_allclose(auto, want, rtol=0, atol=max(bound, float(tol(dtype)["atol"])))


def test_fft_method_bad_uses():
    x = np.ones((8, 8))
    with pytest.raises(ValueError, match="method must be one of 'auto', 'direct', 'fft'"):
        fn.correlate(x, np.ones((3, 3)), method="fastest")
    with pytest.raises(ValueError, match="integer results must be exact"):
        fn.correlate(x.astype(np.int16), np.ones((3, 3)), method="fft")
    with pytest.raises(ValueError, match="integer results must be exact"):
        fn.correlate(x, np.ones((3, 3)), output=np.int32, method="fft")
    with pytest.raises(ValueError, match="1-D or 2-D input"):
        fn.correlate(np.ones((3, 4, 5)), np.ones((3, 3, 3)), method="fft")


def test_auto_keeps_integer_outputs_exact():
    """'auto' never takes the FFT for integer outputs: results equal SciPy's bit for bit even
    with a kernel large enough that a float output would go through the FFT."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 255, (64, 64)).astype(np.uint8)
    w = rng.integers(-3, 4, (31, 31)).astype(np.float64)
    np.testing.assert_array_equal(fn.correlate(x, w, output=np.int32, method="auto"),
                                  nd.correlate(x, w, output=np.int32))


@pytest.mark.parametrize("name", ["sobel", "prewitt"])
def test_bool_sobel_prewitt_are_scipys(name):
    """SciPy keeps each pass's raw byte in a bool output (not 0/1): handed to SciPy, equal."""
    x = np.array([[0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1]], bool)
    for axis in (0, 1):
        np.testing.assert_array_equal(getattr(fn, name)(x, axis), getattr(nd, name)(x, axis))


def test_review_edge_cases_match_scipy():
    """A bool origin is refused by correlate (SciPy's TypeError) and taken by correlate1d;
    inf - inf under the tap loop is NaN without a warning, as in SciPy."""
    x = np.arange(25.0).reshape(5, 5)
    with pytest.raises(TypeError, match="an integer is required"):
        fn.correlate(x, np.ones((3, 3)), origin=True)
    np.testing.assert_array_equal(fn.correlate1d(x, np.ones(3), origin=True),
                                  nd.correlate1d(x, np.ones(3), origin=True))
    x[1, 1], x[2, 2] = np.inf, -np.inf
    k = np.ones((3, 3))
    k[1, 1] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fn.correlate(x, k)
    np.testing.assert_array_equal(got, nd.correlate(x, k))
