"""adaptive_avg_pool2d / adaptive_max_pool2d against loop references over PyTorch's bins;
gradients by float64 central differences and the adjoint identity; the layers; bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import nn
from reference import (adaptive_avg_pool2d_ref, adaptive_bins, adaptive_max_pool2d_ref,
                       numerical_grad_at, random_array, tol)

# (input shape, output_size): dividing, non-dividing (overlapping bins), larger than the
# input (repeated elements), None entries, global 1x1, rectangular, 1-pixel planes.
CASES = [
    ((2, 3, 8, 8), 4),
    ((2, 3, 7, 9), (3, 4)),
    ((1, 2, 5, 7), (3, 5)),
    ((1, 2, 4, 3), (7, 5)),
    ((2, 2, 6, 5), (None, 2)),
    ((2, 2, 6, 5), (4, None)),
    ((3, 4, 7, 7), 1),
    ((2, 3, 10, 1), (3, 1)),
    ((1, 1, 1, 1), (3, 2)),
    ((2, 5, 13, 11), (5, 3)),
    ((1, 3, 9, 40), (2, 17)),
]
IDS = [str(i) for i in range(len(CASES))]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adaptive_avg_forward(case, dtype, threads, rng):
    shape, size = case
    x = rng.standard_normal(shape).astype(dtype)
    y = fastconv.adaptive_avg_pool2d(x, size)
    ref = adaptive_avg_pool2d_ref(x, size)
    assert y.dtype == dtype and y.shape == ref.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, ref, **tol(dtype))


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adaptive_max_forward(case, dtype, threads, rng):
    shape, size = case
    x = rng.standard_normal(shape).astype(dtype)
    y, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
    ref, ref_idx = adaptive_max_pool2d_ref(x, size)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(fastconv.adaptive_max_pool2d(x, size), y)
    # the index points at the value: take it back out of each plane
    planes = x.reshape(shape[0] * shape[1], -1)
    np.testing.assert_array_equal(
        np.take_along_axis(planes, idx.reshape(len(planes), -1), 1).reshape(y.shape), y)


def test_bins_follow_pytorch_formula():
    # H=5 into 3: [0,2) [1,4) [3,5) overlap; H=3 into 5 repeats rows
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_bins(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    x = np.arange(5.0).reshape(1, 1, 5, 1)
    np.testing.assert_allclose(fastconv.adaptive_avg_pool2d(x, (3, 1))[0, 0, :, 0],
                               [0.5, 2.0, 3.5])
    np.testing.assert_array_equal(fastconv.adaptive_max_pool2d(x, (3, 1))[0, 0, :, 0], [1, 3, 4])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adaptive_gradients_finite_differences(case, rng):
    shape, size = case
    # distinct values: every bin has one maximum, so max pooling is differentiable here
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1
    y = fastconv.adaptive_max_pool2d(x, size)
    gy = rng.standard_normal(y.shape)
    picks = rng.choice(x.size, min(x.size, 120), replace=False)  # the loop reference is slow
    gmax = fastconv.adaptive_max_pool2d_backward(gy, x, size)
    num = numerical_grad_at(lambda: float(np.sum(adaptive_max_pool2d_ref(x, size)[0] * gy)), x,
                            picks, eps=1e-3)
    np.testing.assert_allclose(gmax.reshape(-1)[picks], num, rtol=1e-6, atol=1e-8)
    _, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
    np.testing.assert_array_equal(fastconv.adaptive_max_pool2d_backward(gy, x, size, indices=idx),
                                  gmax)
    gavg = fastconv.adaptive_avg_pool2d_backward(gy, x.shape, size)
    # linear in x: a large step has no truncation error and less rounding
    num = numerical_grad_at(lambda: float(np.sum(adaptive_avg_pool2d_ref(x, size) * gy)), x,
                            picks, eps=0.5)
    np.testing.assert_allclose(gavg.reshape(-1)[picks], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adaptive_avg_backward_adjoint(case, dtype, threads, rng):
    # <avg(x), g> == <x, avg_backward(g)> for any x, g: the backward is the transpose
    shape, size = case
    x = rng.standard_normal(shape)
    g = rng.standard_normal(adaptive_avg_pool2d_ref(x, size).shape)
    gi = fastconv.adaptive_avg_pool2d_backward(g.astype(dtype), shape, size)
    assert gi.dtype == dtype and gi.shape == shape
    lhs = np.vdot(adaptive_avg_pool2d_ref(x, size), g)
    np.testing.assert_allclose(np.vdot(x, gi.astype(np.float64)), lhs,
                               rtol=1e-12 if dtype == np.float64 else 1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_adaptive_max_ties_nan_and_inf_match_reference(case, dtype, rng):
    shape, size = case
    x = rng.choice(np.array([-np.inf, -1.0, 0.0, 1.0, np.inf, np.nan], dtype), size=shape)
    y, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
    ref, ref_idx = adaptive_max_pool2d_ref(x, size)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    with np.errstate(invalid="ignore"):
        avg = fastconv.adaptive_avg_pool2d(x, size)
        np.testing.assert_array_equal(np.isnan(avg), np.isnan(adaptive_avg_pool2d_ref(x, size)))


def test_adaptive_max_first_maximum_and_first_nan():
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 0, 2] = x[0, 0, 2, 0] = 4.0
    y, idx = fastconv.adaptive_max_pool2d(x, 1, return_indices=True)
    assert y[0, 0, 0, 0] == 4.0 and idx[0, 0, 0, 0] == 2
    g = fastconv.adaptive_max_pool2d_backward(np.ones_like(y), x, 1)
    assert g[0, 0, 0, 2] == 1 and g.sum() == 1
    x[0, 0, 1, 1] = x[0, 0, 2, 2] = np.nan
    y, idx = fastconv.adaptive_max_pool2d(x, 1, return_indices=True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4
    # all -inf: the first element, as PyTorch
    y, idx = fastconv.adaptive_max_pool2d(np.full((1, 1, 2, 3), -np.inf), 1, return_indices=True)
    assert y[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0


@pytest.mark.parametrize("W", [1, 7, 8, 9, 15, 16, 17, 31, 33])
def test_adaptive_max_run_lengths(W, rng):
    """The vectorised row maximum at run lengths around its vector widths, with the
    maximum (or a NaN) placed at every position of the run."""
    for dtype in (np.float32, np.float64):
        for pos in range(W):
            x = rng.standard_normal((1, 2, 2, W)).astype(dtype)
            x[0, 0, 1, pos] = 10.0
            x[0, 1, 1, pos] = np.nan
            y, idx = fastconv.adaptive_max_pool2d(x, 1, return_indices=True)
            assert y[0, 0, 0, 0] == 10.0 and idx[0, 0, 0, 0] == W + pos
            assert np.isnan(y[0, 1, 0, 0]) and idx[0, 1, 0, 0] == W + pos


def test_global_average_is_accurate_in_float32(rng):
    """float32 sums accumulate in float64: a 256x256 plane around 1e4 (where a float32
    running sum loses ~3 digits) lands within one float32 ulp of the exact mean."""
    x = (1e4 + rng.standard_normal((2, 3, 256, 256))).astype(np.float32)
    exact = x.astype(np.float64).mean(axis=(2, 3))
    y = fastconv.adaptive_avg_pool2d(x, 1)[:, :, 0, 0]
    assert np.all(np.abs(y - exact) <= np.spacing(exact.astype(np.float32)))
    y2 = fastconv.adaptive_avg_pool2d(x, 2)
    np.testing.assert_allclose(y2, adaptive_avg_pool2d_ref(x, 2), rtol=1e-7, atol=0)


@pytest.mark.parametrize("size", [1, (3, 2)])
def test_results_do_not_depend_on_thread_count(size, rng):
    x = rng.standard_normal((8, 64, 7, 7)).astype(np.float32)  # large enough to split
    outs = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        try:
            y, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
            outs.append((fastconv.adaptive_avg_pool2d(x, size), y, idx,
                         fastconv.adaptive_avg_pool2d_backward(y, x.shape, size)))
        finally:
            fastconv.set_num_threads(None)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layout", ["F", "strided", "readonly", "byteswapped"])
def test_input_layouts(layout, rng):
    x = random_array(rng, (2, 3, 9, 7), np.float32, "F" if layout == "F" else
                     "strided" if layout == "strided" else "C")
    if layout == "readonly":
        x.setflags(write=False)
    if layout == "byteswapped":
        x = x.astype(x.dtype.newbyteorder(">"))
    xc = np.ascontiguousarray(x, np.float32)
    np.testing.assert_array_equal(fastconv.adaptive_avg_pool2d(x, (4, 3)),
                                  fastconv.adaptive_avg_pool2d(xc, (4, 3)))
    y, idx = fastconv.adaptive_max_pool2d(x, (4, 3), return_indices=True)
    y_ref, idx_ref = fastconv.adaptive_max_pool2d(xc, (4, 3), return_indices=True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    g = random_array(rng, y.shape, np.float32, "F" if layout == "F" else "strided")
    np.testing.assert_array_equal(fastconv.adaptive_avg_pool2d_backward(g, x.shape, (4, 3)),
                                  fastconv.adaptive_avg_pool2d_backward(np.ascontiguousarray(g), x.shape, (4, 3)))
    np.testing.assert_array_equal(fastconv.adaptive_max_pool2d_backward(g, x, (4, 3)),
                                  fastconv.adaptive_max_pool2d_backward(np.ascontiguousarray(g), xc, (4, 3)))


def test_empty_batch_and_channels():
    for shape in [(0, 3, 5, 5), (2, 0, 5, 5)]:
        x = np.zeros(shape, np.float32)
        assert fastconv.adaptive_avg_pool2d(x, 2).shape == shape[:2] + (2, 2)
        y, idx = fastconv.adaptive_max_pool2d(x, 2, return_indices=True)
        assert y.shape == idx.shape == shape[:2] + (2, 2)
        assert fastconv.adaptive_avg_pool2d_backward(y, shape, 2).shape == shape
        assert fastconv.adaptive_max_pool2d_backward(y, x, 2).shape == shape


@settings(max_examples=40, deadline=None)
@given(data=st.data(), N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 12),
       W=st.integers(1, 12))
def test_adaptive_random_shapes(data, N, C, H, W):
    size = (data.draw(st.one_of(st.none(), st.integers(1, 15))),
            data.draw(st.one_of(st.none(), st.integers(1, 15))))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C, H, W))
    y = fastconv.adaptive_avg_pool2d(x, size)
    np.testing.assert_allclose(y, adaptive_avg_pool2d_ref(x, size), rtol=1e-12, atol=1e-12)
    m, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
    m_ref, idx_ref = adaptive_max_pool2d_ref(x, size)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    g = rng.standard_normal(y.shape)
    gi = fastconv.adaptive_avg_pool2d_backward(g, x.shape, size)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, gi), rtol=1e-10, atol=1e-10)
    # max backward: each output gradient lands at its argmax, summed where bins share one
    expected = np.zeros(N * C * H * W)
    np.add.at(expected, (idx + (np.arange(N * C) * H * W).reshape(N, C, 1, 1)).ravel(), g.ravel())
    np.testing.assert_allclose(fastconv.adaptive_max_pool2d_backward(g, x, size),
                               expected.reshape(x.shape), rtol=1e-12, atol=1e-12)


# -- layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [1, (3, None), (5, 4)])
def test_layers_match_functional(size, rng):
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    avg = nn.AdaptiveAvgPool2d(size)
    y = avg(x)
    np.testing.assert_array_equal(y, fastconv.adaptive_avg_pool2d(x, size))
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_array_equal(avg.backward(g), fastconv.adaptive_avg_pool2d_backward(g, x.shape, size))
    mx = nn.AdaptiveMaxPool2d(size)
    y = mx(x)
    np.testing.assert_array_equal(y, fastconv.adaptive_max_pool2d(x, size))
    np.testing.assert_array_equal(mx.backward(g), fastconv.adaptive_max_pool2d_backward(g, x, size))
    # a second step with new data in the same layer (the workspace arrays are reused)
    x2 = rng.standard_normal(x.shape).astype(np.float32)
    del y
    np.testing.assert_array_equal(mx(x2), fastconv.adaptive_max_pool2d(x2, size))
    np.testing.assert_array_equal(mx.backward(g), fastconv.adaptive_max_pool2d_backward(g, x2, size))
    np.testing.assert_array_equal(avg(x2), fastconv.adaptive_avg_pool2d(x2, size))


def test_adaptive_max_layer_return_indices_and_errors(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    m = nn.AdaptiveMaxPool2d(2, return_indices=True)
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.zeros((1, 2, 2, 2)))
    y, idx = m(x)
    y_ref, idx_ref = fastconv.adaptive_max_pool2d(x, 2, return_indices=True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(idx, idx_ref)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        m.backward(np.zeros((1, 2, 3, 3)))
    m.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="one backward"):
        m.backward(np.ones_like(y))
    avg = nn.AdaptiveAvgPool2d(2)
    with pytest.raises(RuntimeError, match="before forward"):
        avg.backward(np.zeros((1, 2, 2, 2)))
    avg(x)
    with pytest.raises(ValueError, match="dtype float64"):
        avg.backward(np.zeros((1, 2, 2, 2), np.float32))


def test_layer_repr():
    assert repr(nn.AdaptiveAvgPool2d((None, 7))) == "AdaptiveAvgPool2d(output_size=(None, 7))"
    assert repr(nn.AdaptiveAvgPool2d(1)) == "AdaptiveAvgPool2d(output_size=1)"
    assert repr(nn.AdaptiveMaxPool2d(3)) == "AdaptiveMaxPool2d(output_size=3)"
    assert repr(nn.AdaptiveMaxPool2d(3, True)) == "AdaptiveMaxPool2d(output_size=3, return_indices=True)"


def test_in_a_sequential_model(rng):
    """Global average pooling as a CNN head: the weight gradient that flows back through
    it matches central differences of the whole model's output."""
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).double()
    x = rng.standard_normal((2, 1, 9, 9))
    y = model(x)
    assert y.shape == (2, 3)
    model.zero_grad()
    model.backward(np.ones_like(y))
    w = model[0].weight
    picks = [0, 5, 17, 35]
    num = numerical_grad_at(lambda: float(model(x).sum()), w.data, picks)
    np.testing.assert_allclose(w.grad.reshape(-1)[picks], num, rtol=1e-6, atol=1e-9)


# -- bad input ---------------------------------------------------------------------------
x4 = np.zeros((2, 3, 8, 8), np.float32)
g4 = np.zeros((2, 3, 4, 4), np.float32)

BAD = [
    (lambda: fastconv.adaptive_avg_pool2d([1.0], 2), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.adaptive_avg_pool2d(x4[0], 2), ValueError, "x must be 4-D"),
    (lambda: fastconv.adaptive_avg_pool2d(x4.astype(np.int32), 2), TypeError, "x must have dtype"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, 0), ValueError, "output_size must be positive"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, (2, -1)), ValueError, "output_size must be positive"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, 2.0), TypeError, "output_size must be an int or a pair"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, None), TypeError, "output_size must be an int or a pair"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, True), TypeError, "output_size must be an int or a pair"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, (2, 2, 2)), ValueError, "output_size must be an int or a pair"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, (2, "a")), TypeError, "output_size must be an int"),
    (lambda: fastconv.adaptive_avg_pool2d(np.zeros((1, 1, 0, 3)), 2), ValueError, "non-zero H and W"),
    (lambda: fastconv.adaptive_avg_pool2d(x4, 10**7), MemoryError, "adaptive_avg_pool2d output"),
    (lambda: fastconv.adaptive_avg_pool2d_backward(g4, (2, 3, 8), 4), ValueError,
     "input_shape must be a tuple of 4 ints"),
    (lambda: fastconv.adaptive_avg_pool2d_backward(g4, (2, 3, 8, 8), 3), ValueError,
     "grad_output must have shape (2, 3, 3, 3)"),
    (lambda: fastconv.adaptive_avg_pool2d_backward(None, (2, 3, 8, 8), 4), TypeError,
     "grad_output must be a numpy.ndarray"),
    (lambda: fastconv.adaptive_avg_pool2d_backward(g4, (2, 3, 8, -8), 4), ValueError,
     "input_shape must be >= 0"),
    (lambda: fastconv.adaptive_max_pool2d(x4, 2, return_indices=1), TypeError,
     "return_indices must be a bool"),
    (lambda: fastconv.adaptive_max_pool2d(x4, [2]), ValueError, "output_size must be an int or a pair"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4, x4, 3), ValueError,
     "grad_output must have shape (2, 3, 3, 3)"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4.astype(np.float64), x4, 4), TypeError,
     "share one dtype"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4, x4, 4, indices=np.full(g4.shape, 64)),
     ValueError, "indices must be flat positions"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4, x4, 4, indices=np.zeros(g4.shape, np.float32)),
     TypeError, "integer dtype"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4, x4, 4, indices=np.zeros((2, 3, 4), np.int64)),
     ValueError, "indices must have shape"),
    (lambda: fastconv.adaptive_max_pool2d_backward(g4, x4, 4, indices=[0]), TypeError,
     "indices must be a numpy.ndarray"),
    (lambda: nn.AdaptiveAvgPool2d(0), ValueError, "output_size must be positive"),
    (lambda: nn.AdaptiveAvgPool2d("7"), TypeError, "output_size must be an int or a pair"),
    (lambda: nn.AdaptiveAvgPool2d((1, 2, 3)), ValueError, "output_size must be an int or a pair"),
    (lambda: nn.AdaptiveMaxPool2d(None), TypeError, "output_size must be an int or a pair"),
    (lambda: nn.AdaptiveMaxPool2d(2, return_indices="yes"), TypeError, "return_indices must be a bool"),
    (lambda: nn.AdaptiveAvgPool2d(2)(x4[0]), ValueError, "x must be 4-D"),
    (lambda: nn.AdaptiveMaxPool2d(2)("x"), TypeError, "x must be a numpy.ndarray"),
]


@pytest.mark.parametrize("call,exc,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_raises_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# -- optional PyTorch cross-check --------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    shape, size = case
    x = rng.standard_normal(shape)
    g = rng.standard_normal(adaptive_avg_pool2d_ref(x, size).shape)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(tx, size)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(fastconv.adaptive_avg_pool2d(x, size), ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(fastconv.adaptive_avg_pool2d_backward(g, shape, size), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-14)
    tx.grad = None
    ty, tidx = torch.nn.functional.adaptive_max_pool2d(tx, size, return_indices=True)
    ty.backward(torch.tensor(g))
    y, idx = fastconv.adaptive_max_pool2d(x, size, return_indices=True)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_allclose(fastconv.adaptive_max_pool2d_backward(g, x, size), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-14)
