"""The fused 3x3 gradient pass behind 2-D fastconv.filters.sobel/prewitt/scharr
(fastconv.functional.filter.gradient_planes, kernel _filter.gradient_planes) against the
separable 1-D passes it replaces (the same sums: bitwise for sobel/prewitt, whose weights
make every product exact, and for integer images), the NumPy 3x3 product-kernel reference
(tests/reference.py) and scikit-image where installed."""
import numpy as np
import pytest
from reference import edge_filter_ref, tol

import fastconv
import fastconv.filters as ff
from fastconv._kernels import _filter
from fastconv.functional.filter import gradient_planes, source_map
from fastconv.ndimage import MODES as RULES
from fastconv.functional.ndfilter import separable

SMOOTH = {"sobel": [0.25, 0.5, 0.25], "prewitt": [1 / 3] * 3, "scharr": [3 / 16, 10 / 16, 3 / 16]}
MODES = ["reflect", "constant", "nearest", "mirror", "wrap"]
SHAPES = [(1, 1), (1, 7), (2, 2), (6, 1), (3, 3), (5, 17), (4, 18), (3, 19), (9, 33), (7, 40), (6, 51)]
EDGE = np.array([-1.0, 0.0, 1.0])


def image(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.standard_normal(shape) > 0
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def as_float_ref(x):
    if x.dtype.kind in "iu":
        return np.maximum(x / np.iinfo(x.dtype).max, -1.0)
    return x.astype(np.float64)


def separable_ref(name, x, axis, mode, cval):
    """The two-pass pipeline fastconv.filters ran before the fused pass (2-D)."""
    smooth, norm = ff.SMOOTHING[name]
    values, scale = ff._as_float(x)
    out_dtype = values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    rule = RULES[mode]
    if values.dtype.kind != "f" and (cval and rule == "fill" or ff._largest(values) * 8 * 16 >= 2.0 ** 24):
        values, scale = values * scale, 1.0
    dt = np.dtype(np.float32) if values.dtype.kind != "f" else values.dtype
    parts = []
    for ax in ((0, 1) if axis is None else (axis,)):
        passes = [(ax, EDGE, rule, cval / scale), (1 - ax, smooth, rule, 0.0)]
        parts.append(separable(values, passes, [dt] * 2, skip_zero_taps=True))
    if axis is not None:
        out = parts[0].astype(out_dtype)
        out *= out_dtype.type(scale * norm)
        return out
    return ff._magnitude(parts, scale * norm / np.sqrt(2), out_dtype)


def check_same(got, want, name, dtype):
    assert got.dtype == want.dtype and got.shape == want.shape
    if name == "scharr" and np.dtype(dtype).kind == "f":
        # 3 and 10 times a float rounds: the sums may differ in the last place (fused
        # multiply-adds in one path, not in the other)
        np.testing.assert_allclose(got, want, rtol=tol(got.dtype)["rtol"], atol=tol(got.dtype)["atol"])
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", list(SMOOTH))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("avx512", [True, False], ids=["avx512", "portable"])
def test_fused_matches_the_separable_passes(name, dtype, mode, avx512):
    if avx512 and not _filter.AVX512_AVAILABLE:
        pytest.skip("no AVX-512 on this CPU / build")
    previous = _filter.use_avx512(avx512)
    try:
        rng = np.random.default_rng(len(name) * 13 + len(mode))
        for shape in SHAPES:
            x = image(rng, shape, dtype)
            for axis in (None, 0, 1):
                cval = 0.0 if np.dtype(dtype).kind in "iu" else 0.7
                got = getattr(ff, name)(x, axis=axis, mode=mode, cval=cval)
                check_same(got, separable_ref(name, x, axis, mode, cval), name, dtype)
                want = edge_filter_ref(as_float_ref(x), SMOOTH[name], axis, mode, cval)
                np.testing.assert_allclose(got, want, **tol(got.dtype))
    finally:
        _filter.use_avx512(previous)


def test_two_dimensional_calls_take_the_fused_pass(monkeypatch):
    calls = []
    real = ff.gradient_planes

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return real(*args, **kwargs)

    monkeypatch.setattr(ff, "gradient_planes", spy)
    x = np.ones((4, 5), np.uint8)
    ff.sobel(x), ff.prewitt_h(x), ff.scharr(x.astype(np.float32), axis=(1, 0)), ff.sobel(x, mode="constant", cval=1)
    assert calls == [np.uint8, np.uint8, np.float32, np.float64]
    ff.sobel(np.ones((3, 4, 5))), ff.sobel(x, axis=(0, 0)), ff.sobel(x.astype(float), cval=np.inf, mode="constant")
    assert len(calls) == 4  # n-D, a repeated axis, a non-finite border: the separable passes


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.bool_, np.uint8, np.int32])
@pytest.mark.parametrize("mode", MODES)
def test_other_integer_images_and_cval(dtype, mode):
    """Other integers run as float32 values (bool as uint8); a nonzero cval with 'constant'
    takes the float64 kernel on img_as_float's values."""
    rng = np.random.default_rng(3)
    for shape in ((1, 1), (4, 21), (17, 5)):
        x = image(rng, shape, dtype)
        if np.dtype(dtype) == np.int32:
            x = (x // 65536).astype(np.int32)
        for cval in (0.0, 0.35):
            for axis in (None, 0, 1):
                got = ff.prewitt(x, axis=axis, mode=mode, cval=cval)
                want = edge_filter_ref(as_float_ref(x), SMOOTH["prewitt"], axis, mode, cval)
                assert got.dtype == np.float64
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_per_axis_modes_in_the_fused_pass():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 37))
    for modes in (("wrap", "constant"), ("constant", "mirror"), ("nearest", "reflect")):
        for axis in (None, 0, 1):
            got = ff.sobel(x, axis=axis, mode=modes, cval=0.5)
            parts = []  # the separable passes in float64, each axis its own rule
            for ax in ((0, 1) if axis is None else (axis,)):
                passes = [(ax, EDGE, RULES[modes[ax]], 0.5), (1 - ax, np.array([1.0, 2.0, 1.0]), RULES[modes[1 - ax]], 0.0)]
                parts.append(separable(x, passes, [np.dtype(np.float64)] * 2, skip_zero_taps=True) / 4)
            want = parts[0] if axis is not None else np.sqrt((parts[0] ** 2 + parts[1] ** 2) / 2)
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16])
def test_one_and_two_threads_are_bitwise_equal(dtype):
    rng = np.random.default_rng(5)
    x = image(rng, (517, 301), dtype)  # > 2**16 pixels per thread: the parallel path
    results = []
    try:
        for n in (1, 2, 1):
            fastconv.set_num_threads(n)
            results.append([f(x, mode=m) for f in (ff.sobel, ff.scharr) for m in ("reflect", "constant")]
                           + [ff.prewitt(x, axis=1), ff.sobel_h(x)])
    finally:
        fastconv.set_num_threads(None)
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(results[0], results[2]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("width", [5, 18, 40])
def test_nan_spreads_over_the_smoothing_taps_only(width):
    x = np.random.default_rng(6).standard_normal((7, width)).astype(np.float32)
    x[3, 2] = np.nan
    rows0, cols0 = {2, 4}, {1, 2, 3}  # gx: derivative along axis 0 skips row 3
    rows1, cols1 = {2, 3, 4}, {1, 3}
    for axis, cells in ((0, {(r, c) for r in rows0 for c in cols0}), (1, {(r, c) for r in rows1 for c in cols1}),
                        (None, {(r, c) for r in rows0 for c in cols0} | {(r, c) for r in rows1 for c in cols1})):
        y = ff.sobel(x, axis=axis)
        assert set(map(tuple, np.argwhere(np.isnan(y)))) == cells
        finite = ~np.isnan(y)  # there the NaN sits under no tap or a zero one: any value gives the same
        want = edge_filter_ref(np.nan_to_num(x, nan=0.0).astype(np.float64), SMOOTH["sobel"], axis)
        np.testing.assert_allclose(y[finite], want[finite], **tol(np.float32))
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(ff.sobel(x64)), np.isnan(ff.sobel(x)))


def test_inf_input_and_mask():
    x = np.random.default_rng(7).standard_normal((6, 20))
    x[2, 5] = np.inf
    y = ff.scharr(x)
    want = separable_ref("scharr", x, None, "reflect", 0.0)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(want))
    np.testing.assert_allclose(y[np.isfinite(y)], want[np.isfinite(want)], rtol=1e-13)
    mask = np.ones(x.shape, bool)
    mask[:, 10] = False
    got = ff.sobel(x, mask)
    full = ff.sobel(x)
    eroded = np.zeros_like(mask)
    eroded[1:-1, 1:-1] = True
    eroded[:, 9:12] = False
    np.testing.assert_array_equal(got, np.where(eroded, full, 0.0))


def test_gradient_planes_direct():
    """The functional entry point: output choices, fill rows and a preset factor."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 23)).astype(np.float32)
    xe = np.pad(x.astype(np.float64), 1, constant_values=2.0)
    gx = (xe[2:, :-2] - xe[:-2, :-2]) + 2 * (xe[2:, 1:-1] - xe[:-2, 1:-1]) + (xe[2:, 2:] - xe[:-2, 2:])
    gy = (xe[:-2, 2:] - xe[:-2, :-2]) + 2 * (xe[1:-1, 2:] - xe[1:-1, :-2]) + (xe[2:, 2:] - xe[2:, :-2])
    for out_dtype in (np.float32, np.float64):
        got = gradient_planes(x, "sobel", ("fill", "fill"), 2.0, 0.5, out_dtype)
        assert got.dtype == out_dtype and got.flags.c_contiguous
        np.testing.assert_allclose(got, 0.5 * np.hypot(gx, gy), rtol=1e-5)
        np.testing.assert_allclose(gradient_planes(x, "sobel", ("fill", "fill"), 2.0, 1.0, out_dtype, "axis0"),
                                   gx, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gradient_planes(x, "sobel", ("fill", "fill"), 2.0, 1.0, out_dtype, "axis1"),
                                   gy, rtol=1e-5, atol=1e-5)
    assert gradient_planes(np.zeros((0, 4), np.uint8), "prewitt", ("symm", "symm"), 0.0, 1.0,
                           np.float64).shape == (0, 4)
    assert source_map(3, 1, 1, "fill")[0] == -1


BAD = [
    ((np.ones((3, 3)), "sobel", ("symm", "symm"), 0.0, 1.0, np.float32), TypeError, "no float64 -> float32"),
    ((np.ones((3, 3), np.uint8), "sobel", ("symm", "symm"), 0.0, 1.0, np.float32), TypeError, "no uint8"),
    ((np.ones((3, 3), np.int16), "sobel", ("symm", "symm"), 0.0, 1.0, np.float64), TypeError, "no int16"),
    ((np.ones((3, 3)), "roberts", ("symm", "symm"), 0.0, 1.0, np.float64), ValueError, "family must be one of"),
    ((np.ones((3, 3)), "sobel", ("symm", "symm"), 0.0, 1.0, np.float64, "axis2"), ValueError,
     "output must be one of"),
]


@pytest.mark.parametrize("args, exc, match", BAD)
def test_gradient_planes_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        gradient_planes(*args)


@pytest.mark.parametrize("name", list(SMOOTH))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16])
def test_fused_against_scikit_image(name, dtype):
    skf = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(9)
    for shape in ((1, 1), (2, 2), (1, 19), (18, 1), (13, 35)):
        x = image(rng, shape, dtype)
        for mode in MODES:
            for axis in (None, 0, 1):
                want = getattr(skf, name)(x, axis=axis, mode=mode, cval=0.2)
                got = getattr(ff, name)(x, axis=axis, mode=mode, cval=0.2)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_allclose(got, want, **tol(want.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pixel_does_not_depend_on_the_code_path(dtype):
    """Vector, short-row and border code give the same bits for the same neighbourhood (so a
    tile of the image, as a dask chunk, matches the whole): scharr, whose products round."""
    x = image(np.random.default_rng(10), (12, 70), dtype)
    full = ff.scharr(x)
    for c0, c1 in ((0, 70), (3, 30), (5, 12), (20, 23), (40, 69)):
        tile = ff.scharr(x[:, c0:c1])
        np.testing.assert_array_equal(tile[1:-1, 1:-1], full[1:-1, c0 + 1:c1 - 1])
