"""Winograd F(2x2, 3x3) (``algorithm="winograd"``: forward, grad_input and grad_weight)
against the tap-by-tap references of tests/reference.py.

Both input-transform paths run: the AVX-512 one (float32, images up to 30 columns after
padding, the padded copy skipped, masked loads) and the portable one (float64, wider
images, and everything with ``_direct.use_avx512(False)`` through the ``simd`` fixture).
Odd output sizes leave half-outside tiles; padding 0-3 covers grad_input's cropped case
(its padding is 2 - pad).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv.functional import choose_algorithm
from fastconv.functional._geometry import conv_geometry
from reference import conv2d_grads_ref, conv2d_ref, tol


def _check(x, w, b, p, rtol_scale=1.0):
    dtype = x.dtype
    t = tol(dtype)
    C, C_out = x.shape[1], w.shape[0]
    y = fastconv.conv2d(x, w, b, padding=p, algorithm="winograd")
    ref = conv2d_ref(x, w, b, 1, p)
    np.testing.assert_allclose(y, ref, rtol=t["rtol"], atol=t["atol"] * np.sqrt(9 * C) * 4)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    gi, gw, gb = fastconv.conv2d_backward(gy, x, w, padding=p, algorithm="winograd")
    gi_ref, gw_ref = conv2d_grads_ref(gy, x, w, 1, p)
    np.testing.assert_allclose(gi, gi_ref, rtol=t["rtol"], atol=t["atol"] * np.sqrt(9 * C_out) * 4)
    np.testing.assert_allclose(gw, gw_ref, rtol=t["rtol"],
                               atol=t["atol"] * np.sqrt(gy[0, 0].size * len(x)))
    np.testing.assert_allclose(gb, gy.sum((0, 2, 3)), rtol=t["rtol"], atol=t["atol"] * 10)


@pytest.mark.parametrize(
    "shape",
    [
        # (N, C_in, H, W, C_out, pad)
        (3, 64, 7, 7, 64, 1),  # ResNet-8 stage 3: 4x4 tiles, half-outside last row/column
        (5, 32, 14, 14, 32, 1),  # stage 2: 7x7 tiles, several images per chunk
        (2, 16, 28, 28, 16, 1),  # stage 1: 14 tile columns, the widest AVX-512 input path
        (2, 5, 31, 30, 7, 1),  # 16 tile columns: the portable input transform
        (3, 3, 9, 12, 17, 0),  # no padding: OH 7, OW 10; grad_input padded by 2
        (2, 4, 6, 5, 3, 2),  # pad 2: grad_input unpadded
        (2, 6, 8, 9, 5, 3),  # pad 3: grad_input's padding -1 crops grad_output
        (1, 1, 3, 3, 1, 0),  # one output pixel
        (4, 2, 1, 1, 3, 1),  # 1x1 images
        (2, 9, 10, 4, 11, (0, 2)),  # different padding per axis
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_reference(simd, shape, dtype, rng):
    N, C, H, W, C_out, p = shape
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((C_out, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    _check(x, w, b, p)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(N=st.integers(1, 13), C=st.integers(1, 20), C_out=st.integers(1, 40),
       H=st.integers(1, 17), W=st.integers(1, 35), ph=st.integers(0, 3), pw=st.integers(0, 3),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**32 - 1))
def test_sweep(simd, N, C, C_out, H, W, ph, pw, dtype, seed):
    if H + 2 * ph < 3 or W + 2 * pw < 3:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((C_out, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    _check(x, w, b, (ph, pw))


def test_non_contiguous_inputs(rng):
    x = np.asfortranarray(rng.standard_normal((3, 8, 11, 9)).astype(np.float32))
    w = rng.standard_normal((6, 8, 3, 3)).astype(np.float32)[:, :, ::-1, :]
    y = fastconv.conv2d(x, w, padding=1, algorithm="winograd")
    np.testing.assert_allclose(y, conv2d_ref(x, w, None, 1, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_bitwise_reproducible(threads, rng):
    """Images go in chunks fixed by the shape: the same bits run to run and at any thread
    count (no sums across threads)."""
    x = rng.standard_normal((37, 32, 14, 14)).astype(np.float32)
    w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((37, 32, 14, 14)).astype(np.float32)
    y1 = fastconv.conv2d(x, w, padding=1, algorithm="winograd")
    gi1, gw1, _ = fastconv.conv2d_backward(gy, x, w, padding=1, algorithm="winograd")
    for _ in range(2):
        assert np.array_equal(fastconv.conv2d(x, w, padding=1, algorithm="winograd"), y1)
        gi, gw, _ = fastconv.conv2d_backward(gy, x, w, padding=1, algorithm="winograd")
        assert np.array_equal(gi, gi1)
        assert np.array_equal(gw, gw1)  # per-thread partials summed in thread order
    fastconv.set_num_threads(3 - threads)
    try:
        assert np.array_equal(fastconv.conv2d(x, w, padding=1, algorithm="winograd"), y1)
    finally:
        fastconv.set_num_threads(threads)


def test_auto_choice_is_runnable(rng):
    """Whatever "auto" picks for the ResNet-8 shapes runs and matches the reference."""
    for C, H, C_out in [(16, 28, 16), (32, 14, 32), (64, 7, 64)]:
        x = rng.standard_normal((2, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((C_out, C, 3, 3)) / np.sqrt(9 * C)).astype(np.float32)
        g = conv_geometry(x.shape, w.shape, 1, 1)
        assert choose_algorithm(g, np.float32, "forward") in ("direct", "winograd")
        y = fastconv.conv2d(x, w, padding=1)
        np.testing.assert_allclose(y, conv2d_ref(x, w, None, 1, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding=1),
        dict(dilation=2, padding=2),
        dict(groups=2, padding=1),
    ],
)
def test_rejects_unsupported_geometry(kwargs, rng):
    C = 4
    x = rng.standard_normal((1, C, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, C // kwargs.get("groups", 1), 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d(x, w, algorithm="winograd", **kwargs)
    gy = np.zeros(fastconv.conv2d(x, w, **kwargs).shape, np.float32)
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d_backward(gy, x, w, algorithm="winograd", **kwargs)


def test_rejects_other_kernel_sizes(rng):
    x = rng.standard_normal((1, 2, 8, 8))
    with pytest.raises(ValueError, match="algorithm"):
        fastconv.conv2d(x, rng.standard_normal((2, 2, 5, 5)), algorithm="winograd")
