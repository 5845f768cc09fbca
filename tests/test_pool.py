"""max_pool2d / avg_pool2d against sliding-window references, gradients by finite differences."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from reference import avg_pool2d_ref, max_pool2d_ref, numerical_grad, tol

# (shape, kernel, stride, padding, ceil_mode)
POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0, False),
    ((2, 3, 7, 9), 2, None, 0, True),
    ((1, 2, 9, 7), 3, 2, 1, False),
    ((1, 2, 9, 7), 3, 2, 1, True),
    ((2, 1, 10, 6), (3, 2), (2, 1), (1, 1), True),
    ((1, 2, 5, 5), 5, 1, 2, False),
    ((1, 1, 6, 5), 2, 3, 0, False),  # stride > kernel
    ((1, 1, 4, 4), 3, 3, 1, True),
]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_max_pool_forward(case, dtype, threads, rng):
    shape, k, s, p, ceil = case
    x = rng.standard_normal(shape).astype(dtype)
    y, idx = fastconv.max_pool2d(x, k, s, p, ceil, return_indices=True)
    ref, ref_idx = max_pool2d_ref(x, k, s, p, ceil)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, k, s, p, ceil), y)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_avg_pool_forward(case, dtype, count_include_pad, threads, rng):
    shape, k, s, p, ceil = case
    x = rng.standard_normal(shape).astype(dtype)
    y = fastconv.avg_pool2d(x, k, s, p, ceil, count_include_pad)
    np.testing.assert_allclose(y, avg_pool2d_ref(x, k, s, p, ceil, count_include_pad), **tol(dtype))


def test_avg_pool_ceil_mode_divisor_matches_pytorch():
    # torch.nn.functional.avg_pool2d(ones(1,1,4,4), 3, 2, 1, ceil_mode=True): the last
    # window [3, 6) is clipped to the padded input [-1, 5) -> 2 rows for the divisor, of
    # which 1 row is real data. Windows: rows/cols [-1,2) 3 (2 real), [1,4) 3 (3), [3,5) 2 (1).
    x = np.ones((1, 1, 4, 4))
    y = fastconv.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
    assert y.shape == (1, 1, 3, 3)
    expected = [[4 / 9, 6 / 9, 2 / 6], [6 / 9, 9 / 9, 3 / 6], [2 / 6, 3 / 6, 1 / 4]]
    np.testing.assert_allclose(y[0, 0], expected)
    y2 = fastconv.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(y2, np.ones_like(y2))


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_pool_gradients_finite_differences(case, rng):
    shape, k, s, p, ceil = case
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1  # no ties
    y = fastconv.max_pool2d(x, k, s, p, ceil)
    gy = rng.standard_normal(y.shape)
    gmax = fastconv.max_pool2d_backward(gy, x, k, s, p, ceil)
    num = numerical_grad(lambda: float(np.sum(max_pool2d_ref(x, k, s, p, ceil)[0] * gy)), x, eps=1e-3)
    np.testing.assert_allclose(gmax, num, rtol=1e-6, atol=1e-8)
    _, idx = fastconv.max_pool2d(x, k, s, p, ceil, return_indices=True)
    np.testing.assert_array_equal(fastconv.max_pool2d_backward(gy, x, k, s, p, ceil, indices=idx), gmax)
    for cip in (True, False):
        gavg = fastconv.avg_pool2d_backward(gy, x.shape, k, s, p, ceil, cip)
        num = numerical_grad(lambda: float(np.sum(avg_pool2d_ref(x, k, s, p, ceil, cip) * gy)), x)
        np.testing.assert_allclose(gavg, num, rtol=1e-6, atol=1e-8)


def test_max_pool_ties_first_maximum_gets_gradient():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 5.0  # two maxima in the first window
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert idx[0, 0, 0, 0] == 1  # row-major first: (0, 1)
    assert idx[0, 0, 1, 1] == 2 * 4 + 2  # all-zero window: its first element
    g = fastconv.max_pool2d_backward(np.ones_like(y), x, 2)
    assert g[0, 0, 0, 1] == 1 and g[0, 0, 1, 0] == 0


def test_max_pool_nan_propagates():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 3, 2] = np.nan
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    assert np.isnan(y[0, 0, 1, 1]) and idx[0, 0, 1, 1] == 14
    assert y[0, 0, 0, 1] == 7 and y[0, 0, 1, 0] == 13
    g = fastconv.max_pool2d_backward(np.ones_like(y), x, 2)
    assert g[0, 0, 1, 1] == 1 and g[0, 0, 3, 2] == 1 and g.sum() == 4


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_max_pool_ties_nan_and_inf_match_reference(case, dtype, rng):
    # Values from a tiny set make ties, NaNs and all -inf windows common; this covers both
    # the 2x2/2 fast path (case 0) and the general two-pass kernel.
    shape, k, s, p, ceil = case
    x = rng.choice(np.array([-np.inf, -1.0, 0.0, 1.0, np.inf, np.nan], dtype), size=shape)
    y, idx = fastconv.max_pool2d(x, k, s, p, ceil, return_indices=True)
    ref, ref_idx = max_pool2d_ref(x, k, s, p, ceil)
    np.testing.assert_array_equal(y, ref)  # NaN == NaN for assert_array_equal
    np.testing.assert_array_equal(idx, ref_idx)


def test_max_pool_padding_is_minus_infinity():
    x = -np.ones((1, 1, 3, 3))
    y = fastconv.max_pool2d(x, 3, 1, 1)
    np.testing.assert_array_equal(y, -np.ones((1, 1, 3, 3)))  # padding never wins


def test_pool_empty_batch():
    x = np.zeros((0, 2, 4, 4), np.float32)
    assert fastconv.max_pool2d(x, 2).shape == (0, 2, 2, 2)
    assert fastconv.avg_pool2d(x, 2).shape == (0, 2, 2, 2)
    g = fastconv.max_pool2d_backward(np.zeros((0, 2, 2, 2), np.float32), x, 2)
    assert g.shape == x.shape


@settings(max_examples=50, deadline=None)
@given(
    data=st.data(),
    N=st.integers(1, 2),
    C=st.integers(1, 3),
    H=st.integers(1, 11),
    W=st.integers(1, 11),
    ceil=st.booleans(),
    cip=st.booleans(),
)
def test_pool_random_shapes(data, N, C, H, W, ceil, cip):
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    s = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    p = (data.draw(st.integers(0, kh // 2)), data.draw(st.integers(0, kw // 2)))
    if H + 2 * p[0] < kh or W + 2 * p[1] < kw:
        return
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C, H, W))
    y, idx = fastconv.max_pool2d(x, (kh, kw), s, p, ceil, return_indices=True)
    ref, ref_idx = max_pool2d_ref(x, (kh, kw), s, p, ceil)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(fastconv.avg_pool2d(x, (kh, kw), s, p, ceil, cip),
                               avg_pool2d_ref(x, (kh, kw), s, p, ceil, cip), rtol=1e-12, atol=1e-12)
    # adjoint of avg pooling: <avg(x), g> == <x, avg_backward(g)>
    g = rng.standard_normal(y.shape)
    gi = fastconv.avg_pool2d_backward(g, x.shape, (kh, kw), s, p, ceil, cip)
    np.testing.assert_allclose(np.vdot(fastconv.avg_pool2d(x, (kh, kw), s, p, ceil, cip), g),
                               np.vdot(x, gi), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape", [(1, 1, 0, 3), (2, 3, 4, 0)])
@pytest.mark.parametrize("fn", [fastconv.max_pool2d, fastconv.avg_pool2d])
def test_pool_rejects_empty_image(shape, fn):
    """Found by the fuzz test: with padding, an empty image gave windows of padding alone,
    whose argmax (-1) made max_pool2d_backward write before its buffer."""
    x = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match="non-zero H and W"):
        fn(x, 2, padding=1)
    with pytest.raises(ValueError, match="non-zero H and W"):
        fastconv.max_pool2d_backward(np.zeros((1, 1, 1, 2), np.float32), x, 2, padding=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W", [2, 3, 8, 15, 28, 29, 31, 32, 33, 34, 47, 64, 66])
def test_max_pool_2x2_fast_path_every_row_width(W, dtype, rng):
    """The 2x2/2 path (AVX-512: 16 windows a step, the last masked) at widths around the
    step, with ReLU-like ties, NaN and inf, against the reference's values and argmax."""
    x = np.maximum(rng.standard_normal((2, 3, 7, W)), 0).astype(dtype)
    x[0, 0, 0, :2] = np.nan
    x[1, 2, 3:5, -2:] = np.inf
    x[1, 1] = 0.0  # every window a four-way tie
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    y_ref, idx_ref = max_pool2d_ref(x, 2)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)


@pytest.mark.parametrize("bad", [-1, 16, 2**40, -2**62])
def test_max_pool_backward_rejects_an_out_of_range_index(bad, rng):
    """Caller-given indices are range-checked by the backward kernel itself (one bad value
    among valid ones, in the last plane, at 2 threads): a ValueError naming the range."""
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    gy = rng.standard_normal(idx.shape).astype(np.float32)
    # valid indices: the scatter adds every gradient at its argmax, as the reference does
    gi = fastconv.max_pool2d_backward(gy, x, 2, indices=idx)
    ref = np.zeros_like(x).reshape(6, 16)
    for p, (i, v) in enumerate(zip(idx.reshape(6, -1), gy.reshape(6, -1))):
        np.add.at(ref[p], i, v)
    np.testing.assert_array_equal(gi, ref.reshape(x.shape))
    idx = idx.copy()
    idx[1, 2, 1, 0] = bad
    with fastconv.num_threads(2), pytest.raises(ValueError, match=r"indices must be flat positions "
                                                 r"in \[0, H\*W\) = \[0, 16\) .*got 1 outside"):
        fastconv.max_pool2d_backward(gy, x, 2, indices=idx)
