"""fastconv.filters (scikit-image's edge filters) against NumPy references built from the 3x3
product kernels (tests/reference.py) and, where installed (test extra ``test-image``), against
scikit-image itself."""
import numpy as np
import pytest
from reference import edge_filter_ref, roberts_ref, tol

import fastconv.filters as ff

SMOOTH = {"sobel": [0.25, 0.5, 0.25], "prewitt": [1 / 3] * 3, "scharr": [3 / 16, 10 / 16, 3 / 16]}
MODES = ["reflect", "constant", "nearest", "mirror", "wrap"]
DTYPES = [np.float64, np.float32, np.uint8, np.int16, np.bool_, np.float16]


def image(rng, shape, dtype):
    x = rng.standard_normal(shape)
    if np.dtype(dtype).kind == "b":
        return x > 0
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
    return x.astype(dtype)


def as_float_ref(x):
    """img_as_float's values in float64."""
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        return np.maximum(x / info.max, -1.0)
    return x.astype(np.float64)


def out_dtype(dtype):
    return np.dtype(np.float32) if np.dtype(dtype) in (np.float16, np.float32) else np.dtype(np.float64)


@pytest.mark.parametrize("name", list(SMOOTH))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_edge_filters_against_numpy_reference(name, dtype, mode):
    rng = np.random.default_rng(len(name) * 7 + len(mode))
    for shape in ((7, 9), (1, 5), (6, 1), (2, 2)):
        x = image(rng, shape, dtype)
        xf = as_float_ref(x)
        for axis in (None, 0, 1, -1):
            got = getattr(ff, name)(x, axis=axis, mode=mode, cval=0.4)
            ax = None if axis is None else axis % 2
            want = edge_filter_ref(xf, SMOOTH[name], ax, mode, 0.4)
            assert got.dtype == out_dtype(dtype) and got.shape == shape
            np.testing.assert_allclose(got, want, **tol(got.dtype))
    for h, v in ((ff.sobel_h, ff.sobel_v), (ff.prewitt_h, ff.prewitt_v), (ff.scharr_h, ff.scharr_v)):
        if h.__name__.startswith(name):
            x = image(rng, (5, 6), dtype)
            np.testing.assert_allclose(h(x), edge_filter_ref(as_float_ref(x), SMOOTH[name], 0), **tol(out_dtype(dtype)))
            np.testing.assert_allclose(v(x), edge_filter_ref(as_float_ref(x), SMOOTH[name], 1), **tol(out_dtype(dtype)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_roberts_against_numpy_reference(dtype):
    rng = np.random.default_rng(11)
    for shape in ((6, 7), (1, 4), (3, 1)):
        x = image(rng, shape, dtype)
        pos, neg = roberts_ref(as_float_ref(x))
        t = tol(out_dtype(dtype))
        np.testing.assert_allclose(ff.roberts_pos_diag(x), pos, **t)
        np.testing.assert_allclose(ff.roberts_neg_diag(x), neg, **t)
        np.testing.assert_allclose(ff.roberts(x), np.sqrt((pos ** 2 + neg ** 2) / 2), **t)
        assert ff.roberts(x).dtype == out_dtype(dtype)


def test_mask_erodes_by_one_pixel_and_zeros_outside():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((8, 9))
    mask = np.zeros((8, 9), bool)
    mask[1:7, 2:9] = True
    eroded = np.zeros_like(mask)
    eroded[2:6, 3:8] = True  # the border of the image counts as outside
    for f in (ff.sobel, ff.prewitt, ff.scharr, ff.roberts, ff.sobel_h, ff.roberts_neg_diag):
        full = f(x)
        got = f(x, mask)
        np.testing.assert_array_equal(got, np.where(eroded, full, 0.0))


def test_nan_does_not_spread_over_the_zero_taps():
    x = np.random.default_rng(13).standard_normal((7, 8))
    x[3, 4] = np.nan
    for axis, rows, cols in ((0, [2, 4], [3, 4, 5]), (1, [2, 3, 4], [3, 5])):
        y = ff.sobel(x, axis=axis)
        bad = np.argwhere(np.isnan(y))
        assert sorted(map(tuple, bad)) == sorted((r, c) for r in rows for c in cols)
    assert np.isnan(ff.roberts_pos_diag(x)).sum() == 2  # (2, 3) and (3, 4), not the zero taps


def test_three_dimensional_images():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 5, 6))
    from scipy import ndimage as ndi
    parts = []
    for ax in range(3):
        k = np.array([-1.0, 0.0, 1.0]).reshape([3 if a == ax else 1 for a in range(3)])
        for other in range(3):
            if other != ax:
                k = k * np.array([0.25, 0.5, 0.25]).reshape([3 if a == other else 1 for a in range(3)])
        parts.append(ndi.correlate(x, k, mode="nearest"))
    np.testing.assert_allclose(ff.sobel(x, mode="nearest"), np.sqrt(sum(p ** 2 for p in parts) / 3), rtol=1e-12)
    np.testing.assert_allclose(ff.sobel(x, axis=2, mode="nearest"), parts[2], rtol=1e-12)
    np.testing.assert_allclose(ff.sobel(x, axis=(0, 2), mode="nearest"),
                               np.sqrt((parts[0] ** 2 + parts[2] ** 2) / 3), rtol=1e-12)


def test_per_axis_modes():
    x = np.random.default_rng(15).standard_normal((5, 6))
    a = ff.prewitt(x, axis=0, mode=["wrap", "constant"])
    # the derivative along axis 0 wraps; the smoothing along axis 1 sees zeros past the edge
    xe = np.pad(np.pad(x, ((1, 1), (0, 0)), mode="wrap"), ((0, 0), (1, 1)))
    d = xe[2:] - xe[:-2]
    np.testing.assert_allclose(a, (d[:, :-2] + d[:, 1:-1] + d[:, 2:]) / 3, rtol=1e-12)


BAD = [
    (ff.sobel, (np.ones((4, 4)),), {"mode": "bogus"}, ValueError, "mode must be one of"),
    (ff.sobel, (np.ones((4, 4)),), {"mode": ["reflect"]}, ValueError, "mode must be one mode or one per axis"),
    (ff.prewitt, (np.ones((4, 4)),), {"axis": 2}, np.exceptions.AxisError, "axis 2"),
    (ff.scharr, (np.ones((4, 4)) + 1j,), {}, ValueError, "image must be a real or integer array"),
    (ff.sobel, (np.ones((4, 4), object),), {}, ValueError, "image must be a real or integer array"),
    (ff.sobel, (np.ones((4, 4)), np.ones((3, 4))), {}, ValueError, "mask must have the image's shape"),
    (ff.sobel, (np.ones((4, 4)),), {"cval": "x"}, TypeError, "cval must be a real number"),  # skimage: TypeError
    (ff.sobel_h, (np.ones((4, 4, 2)),), {}, ValueError, "must be a 2-dimensional array"),
    (ff.roberts, (np.ones(5),), {}, ValueError, "must be a 2-dimensional array"),
    (ff.roberts_pos_diag, (np.ones((0, 3)),), {}, ValueError, "cannot be an empty array"),
]


@pytest.mark.parametrize("f, args, kwargs, exc, match", BAD)
def test_bad_inputs(f, args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        f(*args, **kwargs)


# --- scikit-image itself (the test extra) ---

@pytest.mark.parametrize("name", ["sobel", "prewitt", "scharr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.uint16, np.int8, np.bool_])
def test_against_scikit_image(name, dtype):
    skf = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(16)
    for shape in ((9, 11), (1, 6), (5, 1), (3, 4, 5)):
        x = image(rng, shape, dtype)
        mask = rng.random(shape) > 0.2
        for mode in MODES:
            for axis in (None, 0, 1, (0, 1)):
                for m in (None, mask):
                    want = getattr(skf, name)(x, m, axis=axis, mode=mode, cval=0.3)
                    got = getattr(ff, name)(x, m, axis=axis, mode=mode, cval=0.3)
                    assert got.dtype == want.dtype and got.shape == want.shape
                    np.testing.assert_allclose(got, want, **tol(want.dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_two_dimensional_filters_against_scikit_image(dtype):
    skf = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(17)
    x = image(rng, (12, 13), dtype)
    x[4, 5] = 0
    if np.dtype(dtype).kind == "f":
        x[4, 5] = np.nan  # skipped under the zero taps by both
    mask = rng.random(x.shape) > 0.1
    for name in ("sobel_h", "sobel_v", "prewitt_h", "prewitt_v", "scharr_h", "scharr_v", "roberts",
                 "roberts_pos_diag", "roberts_neg_diag"):
        for m in (None, mask):
            want = getattr(skf, name)(x, m)
            got = getattr(ff, name)(x, m)
            assert got.dtype == want.dtype
            np.testing.assert_allclose(got, want, **tol(want.dtype))


@pytest.mark.parametrize("cval", [1j, "a", np.array([1.0, 2.0])])
def test_cval_must_be_a_real_number(cval):
    with pytest.raises(TypeError, match="cval must be a real number"):
        ff.sobel(np.ones((4, 4)), mode="constant", cval=cval)
