"""softmax / log_softmax against the float64 NumPy formula, maxout against reshape+max;
gradients by float64 central differences; stability, -inf/NaN, ties; layers; bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import nn
from reference import maxout_ref, numerical_grad, numerical_grad_at, random_array, softmax_ref, tol

FUNCS = {False: (fastconv.softmax, fastconv.softmax_backward),
         True: (fastconv.log_softmax, fastconv.log_softmax_backward)}

# (shape, dim): rows (the last axis), channels of NCHW, blocks of lines wider than the
# kernel's 128-line block, a long axis, 1-D, a length-1 axis.
SOFTMAX_CASES = [
    ((128, 10), 1),
    ((64, 1000), -1),
    ((4, 10, 5, 5), 1),
    ((2, 3, 300), 1),
    ((3, 7, 130), 0),
    ((5,), 0),
    ((4, 1, 6), 1),
    ((2, 3, 4, 5), -2),
    ((1, 70000), 1),
    ((40, 25, 40), 1),
]
SM_IDS = [str(i) for i in range(len(SOFTMAX_CASES))]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=SM_IDS)
def test_softmax_forward(case, dtype, log, threads, rng):
    shape, dim = case
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    y = FUNCS[log][0](x, dim)
    assert y.dtype == dtype and y.shape == shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, softmax_ref(x, dim, log), **tol(dtype))
    if not log:
        np.testing.assert_allclose(y.astype(np.float64).sum(axis=dim), 1.0, **tol(dtype))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("case", SOFTMAX_CASES[:8], ids=SM_IDS[:8])
def test_softmax_backward_finite_differences(case, log, rng):
    shape, dim = case
    fwd, bwd = FUNCS[log]
    x = rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    gi = bwd(g, fwd(x, dim), dim)
    picks = rng.choice(x.size, min(x.size, 60), replace=False)
    num = numerical_grad_at(lambda: float(np.sum(softmax_ref(x, dim, log) * g)), x, picks, eps=1e-4)
    np.testing.assert_allclose(gi.reshape(-1)[picks], num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_backward_formula(log, dtype, rng):
    x = rng.standard_normal((6, 9, 4)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    y = FUNCS[log][0](x, 1)
    y64, g64 = y.astype(np.float64), g.astype(np.float64)
    if log:
        expected = g64 - np.exp(y64) * g64.sum(axis=1, keepdims=True)
    else:
        expected = y64 * (g64 - (g64 * y64).sum(axis=1, keepdims=True))
    gi = FUNCS[log][1](g, y, 1)
    assert gi.dtype == dtype
    np.testing.assert_allclose(gi, expected, **tol(dtype))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), shape=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       log=st.booleans(), double=st.booleans())
def test_softmax_random_shapes_and_dims(data, shape, log, double):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    dtype = np.float64 if double else np.float32
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = (4 * rng.standard_normal(shape)).astype(dtype)
    fwd, bwd = FUNCS[log]
    y = fwd(x, dim)
    np.testing.assert_allclose(y, softmax_ref(x, dim, log), **tol(dtype))
    g = rng.standard_normal(shape).astype(dtype)
    y64 = y.astype(np.float64)
    if log:
        expected = g - np.exp(y64) * g.sum(axis=dim, keepdims=True, dtype=np.float64)
    else:
        expected = y64 * (g - (g * y64).sum(axis=dim, keepdims=True))
    np.testing.assert_allclose(bwd(g, y, dim), expected, **tol(dtype))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e3, 1e30])
def test_softmax_large_inputs_are_stable(scale, dtype, log, rng):
    # exp(x) alone would overflow; shifted by the maximum nothing does
    x = (scale * rng.standard_normal((5, 8, 3))).astype(dtype)
    x[:, 0] = np.finfo(dtype).max / 2  # huge entries, tied at the top in places
    y = FUNCS[log][0](x, 1)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, softmax_ref(x, 1, log), **tol(dtype))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dim", [0, 1])
def test_softmax_inf_and_nan_lines(dim, dtype, log):
    inf, nan = np.inf, np.nan
    rows = np.array([
        [0.0, -inf, 1.0, -inf],    # -inf entries: probability 0, log-probability -inf
        [-inf, -inf, -inf, -inf],  # nothing to normalise: NaN (as PyTorch)
        [inf, 1.0, 2.0, 3.0],      # +inf: inf - inf is NaN, the line is NaN
        [nan, 1.0, 2.0, 3.0],      # NaN propagates to the whole line
        [-1e4, 0.0, -inf, 5.0],    # exp underflows to exactly 0
    ], dtype)
    x = rows if dim == 1 else np.ascontiguousarray(rows.T)
    y = FUNCS[log][0](x, dim)
    ref = softmax_ref(x, dim, log)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
    finite = np.isfinite(ref)
    np.testing.assert_allclose(y[finite], ref[finite], **tol(dtype))
    line0 = y[0] if dim == 1 else y[:, 0]
    if log:
        assert line0[1] == -np.inf and line0[3] == -np.inf
    else:
        assert line0[1] == 0 and line0[3] == 0


def test_softmax_float32_exp_across_its_range():
    """The float32 kernel's own exp, through log_softmax_backward: with g = (0, 1) on a
    line (v, 0), grad_input[0] = -exp(v); within 1 ulp of the correctly rounded exp
    over [-103, 88] (and 0 / inf beyond, NaN for NaN)."""
    v = np.concatenate([np.linspace(-103, 88.7, 20001), [-104.5, -np.inf, 89.0, np.inf, np.nan]])
    v = v.astype(np.float32)
    y = np.stack([v, np.zeros_like(v)], axis=1)
    g = np.zeros_like(y)
    g[:, 1] = 1
    e = -fastconv.log_softmax_backward(g, y, 1)[:, 0]
    with np.errstate(over="ignore"):
        exact = np.exp(v.astype(np.float64))
        ref32 = exact.astype(np.float32)
    normal = np.isfinite(v) & (np.abs(ref32) >= np.finfo(np.float32).tiny) & np.isfinite(ref32)
    ulps = np.abs(e[normal].astype(np.float64) - ref32[normal]) / np.spacing(ref32[normal])
    assert ulps.max() <= 1
    sub = np.isfinite(v) & (ref32 < np.finfo(np.float32).tiny)
    assert np.all(np.abs(e[sub] - exact[sub]) <= 1.5e-45)
    assert e[-4] == 0 and e[-3] == np.inf and e[-2] == np.inf and np.isnan(e[-1])


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_does_not_depend_on_thread_count(log, rng):
    outs = []
    for shape, dim in [((64, 1000), 1), ((16, 10, 300), 1)]:  # rows and blocks, split
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            try:
                y = FUNCS[log][0](x, dim)
                outs.append((n, y, FUNCS[log][1](g, y, dim)))
            finally:
                fastconv.set_num_threads(None)
        for _, y, gi in outs[1:]:
            np.testing.assert_array_equal(y, outs[0][1])
            np.testing.assert_array_equal(gi, outs[0][2])
        outs.clear()


@pytest.mark.parametrize("layout", ["F", "strided", "readonly", "byteswapped"])
def test_softmax_input_layouts(layout, rng):
    x = random_array(rng, (4, 6, 5), np.float32, "F" if layout == "F" else
                     "strided" if layout == "strided" else "C")
    if layout == "readonly":
        x.setflags(write=False)
    if layout == "byteswapped":
        x = x.astype(x.dtype.newbyteorder(">"))
    xc = np.ascontiguousarray(x, np.float32)
    for log in (False, True):
        y = FUNCS[log][0](x, 1)
        np.testing.assert_array_equal(y, FUNCS[log][0](xc, 1))
        np.testing.assert_array_equal(FUNCS[log][1](x, y, 1), FUNCS[log][1](xc, y, 1))


def test_softmax_empty_arrays():
    for shape, dim in [((0, 5), 1), ((3, 0), 1), ((2, 0, 4), 0)]:
        x = np.zeros(shape, np.float32)
        assert fastconv.softmax(x, dim).shape == shape
        assert fastconv.log_softmax_backward(x, x, dim).shape == shape


# -- maxout ------------------------------------------------------------------------------
MAXOUT_CASES = [((4, 6), 2), ((4, 6), 3), ((2, 8, 5), 4), ((2, 6, 4, 5), 2), ((3, 4, 2, 3, 2), 2),
                ((2, 5, 3), 1), ((2, 9, 7, 7), 3), ((64, 600), 4), ((16, 64, 8, 8), 2)]
MO_IDS = [str(i) for i in range(len(MAXOUT_CASES))]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MAXOUT_CASES, ids=MO_IDS)
def test_maxout_forward(case, dtype, threads, rng):
    shape, k = case
    x = rng.standard_normal(shape).astype(dtype)
    y, idx = fastconv.maxout(x, k, return_indices=True)
    ref, ref_idx = maxout_ref(x, k)
    assert y.dtype == dtype and idx.dtype == np.int64 and y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(fastconv.maxout(x, k), y)


@pytest.mark.parametrize("case", MAXOUT_CASES[:7], ids=MO_IDS[:7])
def test_maxout_gradient_finite_differences(case, rng):
    shape, k = case
    x = rng.permutation(np.arange(np.prod(shape), dtype=np.float64)).reshape(shape) * 0.1  # no ties
    y = fastconv.maxout(x, k)
    g = rng.standard_normal(y.shape)
    gi = fastconv.maxout_backward(g, x, k)
    num = numerical_grad(lambda: float(np.sum(maxout_ref(x, k)[0] * g)), x, eps=1e-3)
    np.testing.assert_allclose(gi, num, rtol=1e-6, atol=1e-8)
    _, idx = fastconv.maxout(x, k, return_indices=True)
    np.testing.assert_array_equal(fastconv.maxout_backward(g, x, k, indices=idx), gi)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", MAXOUT_CASES, ids=MO_IDS)
def test_maxout_ties_nan_and_inf(case, dtype, rng):
    shape, k = case
    x = rng.choice(np.array([-np.inf, -1.0, 0.0, 1.0, np.inf, np.nan], dtype), size=shape)
    y, idx = fastconv.maxout(x, k, return_indices=True)
    ref, ref_idx = maxout_ref(x, k)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    # the gradient goes to the winning piece only
    g = np.ones(y.shape, dtype)
    gi = fastconv.maxout_backward(g, x, k)
    expected = np.zeros((shape[0], shape[1] // k, k) + shape[2:], dtype)
    np.put_along_axis(expected, ref_idx[:, :, None], 1, axis=2)
    np.testing.assert_array_equal(gi, expected.reshape(shape))


def test_maxout_first_piece_wins_ties():
    x = np.array([[1.0, 3.0, 3.0, 0.0, 2.0, 2.0]])  # runs (1, 3, 3) and (0, 2, 2)
    y, idx = fastconv.maxout(x, 3, return_indices=True)
    np.testing.assert_array_equal(y, [[3.0, 2.0]])
    np.testing.assert_array_equal(idx, [[1, 1]])
    np.testing.assert_array_equal(fastconv.maxout_backward(np.array([[5.0, 7.0]]), x, 3),
                                  [[0, 5, 0, 0, 7, 0]])


@pytest.mark.parametrize("layout", ["F", "strided", "readonly"])
def test_maxout_input_layouts(layout, rng):
    x = random_array(rng, (3, 6, 5, 4), np.float64, "F" if layout == "F" else
                     "strided" if layout == "strided" else "C")
    if layout == "readonly":
        x.setflags(write=False)
    y, idx = fastconv.maxout(x, 2, return_indices=True)
    ref, ref_idx = maxout_ref(x, 2)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)
    g = random_array(rng, y.shape, np.float64, "F" if layout == "F" else "strided")
    np.testing.assert_array_equal(fastconv.maxout_backward(g, x, 2),
                                  fastconv.maxout_backward(np.ascontiguousarray(g), np.ascontiguousarray(x), 2))


def test_maxout_empty():
    for shape in [(0, 4, 3), (2, 0, 3), (2, 4, 0)]:
        x = np.zeros(shape, np.float32)
        y = fastconv.maxout(x, 2)
        assert y.shape == (shape[0], shape[1] // 2, shape[2])
        assert fastconv.maxout_backward(y, x, 2).shape == shape


@settings(max_examples=30, deadline=None)
@given(data=st.data(), N=st.integers(1, 3), C=st.integers(1, 4), k=st.integers(1, 5),
       rest=st.lists(st.integers(1, 6), max_size=3))
def test_maxout_random_shapes(data, N, C, k, rest):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    x = rng.standard_normal((N, C * k, *rest))
    y, idx = fastconv.maxout(x, k, return_indices=True)
    ref, ref_idx = maxout_ref(x, k)
    np.testing.assert_array_equal(y, ref)
    np.testing.assert_array_equal(idx, ref_idx)


# -- layers ------------------------------------------------------------------------------
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_layers(log, rng):
    layer = nn.LogSoftmax(dim=-1) if log else nn.Softmax(dim=-1)
    fwd, bwd = FUNCS[log]
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.zeros((2, 3)))
    for step in range(2):  # the second step reuses the layer's arrays
        x = rng.standard_normal((5, 7, 3)).astype(np.float32)
        g = rng.standard_normal(x.shape).astype(np.float32)
        y = layer(x)
        np.testing.assert_array_equal(y, fwd(x, -1))
        expected = bwd(g, y, -1)
        del y
        np.testing.assert_array_equal(layer.backward(g), expected)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        layer.backward(np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match="dim must be in"):
        nn.Softmax(dim=3)(x)


def test_maxout_and_identity_layers(rng):
    m = nn.Maxout(3)
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(np.zeros((2, 2)))
    x = rng.standard_normal((2, 6, 4, 4))
    y = m(x)
    np.testing.assert_array_equal(y, fastconv.maxout(x, 3))
    g = rng.standard_normal(y.shape)
    np.testing.assert_array_equal(m.backward(g), fastconv.maxout_backward(g, x, 3))
    with pytest.raises(RuntimeError, match="one backward"):
        m.backward(g)
    m(x)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        m.backward(g[:, :1])
    with pytest.raises(ValueError, match="divisible by num_pieces"):
        m(x[:, :5])
    ident = nn.Identity(54, unused="argument")
    with pytest.raises(RuntimeError, match="before forward"):
        ident.backward(g)
    assert ident(x) is x and ident.backward(g) is g


def test_layer_reprs():
    assert repr(nn.Softmax()) == "Softmax(dim=1)"
    assert repr(nn.LogSoftmax(dim=-1)) == "LogSoftmax(dim=-1)"
    assert repr(nn.Identity()) == "Identity()"
    assert repr(nn.Maxout(2)) == "Maxout(num_pieces=2)"


def test_classifier_head_trains_with_log_softmax(rng):
    """Linear -> Maxout -> Linear -> LogSoftmax, with the NLL gradient by hand: the weight
    gradient matches central differences of the loss."""
    model = nn.Sequential(nn.Linear(5, 8), nn.Maxout(2), nn.Linear(4, 3), nn.LogSoftmax()).double()
    x = rng.standard_normal((6, 5))
    labels = rng.integers(0, 3, 6)

    def loss():
        return float(-model(x)[np.arange(6), labels].mean())

    model.zero_grad()
    y = model(x)
    g = np.zeros_like(y)
    g[np.arange(6), labels] = -1 / 6
    model.backward(g)
    w = model[0].weight
    picks = list(range(0, w.data.size, 3))
    np.testing.assert_allclose(w.grad.reshape(-1)[picks], numerical_grad_at(loss, w.data, picks),
                               rtol=1e-6, atol=1e-9)


# -- bad input ---------------------------------------------------------------------------
x3 = np.zeros((2, 6, 4), np.float32)

BAD = [
    (lambda: fastconv.softmax([1.0, 2.0]), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.softmax(np.array(1.0, np.float32)), ValueError, "at least 1 dimension"),
    (lambda: fastconv.softmax(x3.astype(np.int64)), TypeError, "x must have dtype float32 or float64"),
    (lambda: fastconv.softmax(x3.astype(np.float16)), TypeError, "float16"),
    (lambda: fastconv.softmax(x3, 3), ValueError, "dim must be in [-3, 3)"),
    (lambda: fastconv.softmax(x3, -4), ValueError, "dim must be in [-3, 3)"),
    (lambda: fastconv.softmax(np.zeros(3), 1), ValueError, "dim must be in [-1, 1)"),
    (lambda: fastconv.softmax(x3, 1.0), TypeError, "dim must be an int"),
    (lambda: fastconv.softmax(x3, None), TypeError, "dim must be an int"),
    (lambda: fastconv.log_softmax(x3, True), TypeError, "dim must be an int"),
    (lambda: fastconv.log_softmax("x"), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.softmax_backward(x3, x3[:, :3]), ValueError, "grad_output must have the shape of y"),
    (lambda: fastconv.softmax_backward(x3.astype(np.float64), x3), TypeError, "share one dtype"),
    (lambda: fastconv.softmax_backward(None, x3), TypeError, "grad_output must be a numpy.ndarray"),
    (lambda: fastconv.log_softmax_backward(x3, [1.0]), TypeError, "y must be a numpy.ndarray"),
    (lambda: fastconv.log_softmax_backward(x3, x3, 5), ValueError, "dim must be in"),
    (lambda: fastconv.maxout([1.0], 2), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.maxout(np.zeros(4), 2), ValueError, "at least 2 dimensions"),
    (lambda: fastconv.maxout(x3.astype(np.int32), 2), TypeError, "x must have dtype"),
    (lambda: fastconv.maxout(x3, 4), ValueError, "x channels (6) must be divisible by num_pieces (4)"),
    (lambda: fastconv.maxout(x3, 0), ValueError, "num_pieces must be positive"),
    (lambda: fastconv.maxout(x3, 2.0), TypeError, "num_pieces must be an int"),
    (lambda: fastconv.maxout(x3, 2, return_indices="no"), TypeError, "return_indices must be a bool"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 2, 4), np.float32), x3, 2), ValueError,
     "grad_output must have shape (2, 3, 4)"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4)), x3, 2), TypeError, "share one dtype"),
    (lambda: fastconv.maxout_backward("g", x3, 2), TypeError, "grad_output must be a numpy.ndarray"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4), np.float32), x3, 2,
                                      indices=np.full((2, 3, 4), 2)), ValueError,
     "indices must be piece numbers in [0, num_pieces) = [0, 2)"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4), np.float32), x3, 2,
                                      indices=np.full((2, 3, 4), -1)), ValueError, "indices must be piece numbers"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4), np.float32), x3, 2,
                                      indices=np.zeros((2, 3, 4), np.float32)), TypeError, "integer dtype"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4), np.float32), x3, 2,
                                      indices=np.zeros((2, 3), np.int64)), ValueError, "indices must have shape"),
    (lambda: fastconv.maxout_backward(np.zeros((2, 3, 4), np.float32), x3, 2, indices=[0]), TypeError,
     "indices must be a numpy.ndarray"),
    (lambda: nn.Softmax(dim=1.5), TypeError, "dim must be an int"),
    (lambda: nn.LogSoftmax(dim="1"), TypeError, "dim must be an int"),
    (lambda: nn.Softmax()(np.zeros(3, np.float32)), ValueError, "dim must be in [-1, 1)"),
    (lambda: nn.Softmax()([1.0]), TypeError, "x must be a numpy.ndarray"),
    (lambda: nn.Maxout(0), ValueError, "num_pieces must be positive"),
    (lambda: nn.Maxout(None), TypeError, "num_pieces must be an int"),
    (lambda: nn.Maxout(2)("x"), TypeError, "x must be a numpy.ndarray"),
]


@pytest.mark.parametrize("call,exc,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_raises_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


# -- optional PyTorch cross-check --------------------------------------------------------
@pytest.mark.parametrize("case", SOFTMAX_CASES, ids=SM_IDS)
def test_softmax_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    shape, dim = case
    x = 5 * rng.standard_normal(shape)
    g = rng.standard_normal(shape)
    for log, tf in ((False, torch.softmax), (True, torch.log_softmax)):
        tx = torch.tensor(x, requires_grad=True)
        ty = tf(tx, dim)
        ty.backward(torch.tensor(g))
        y = FUNCS[log][0](x, dim)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(FUNCS[log][1](g, y, dim), tx.grad.numpy(), rtol=1e-10, atol=1e-13)
        x32 = x.astype(np.float32)
        # float32: log_softmax's x - logsumexp loses the ulps of |x| (up to ~25 here), which
        # near zero exceed any relative tolerance; both libraries round so
        np.testing.assert_allclose(FUNCS[log][0](x32, dim), tf(torch.from_numpy(x32), dim).numpy(),
                                   rtol=1e-5, atol=max(1e-6, 8 * np.finfo(np.float32).eps * np.abs(x32).max()))
