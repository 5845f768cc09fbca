"""pad / pad_backward against np.pad, their adjoint identity, and conv2d / nn.Conv2d with
padding_mode against np.pad + conv2d_ref and central differences."""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import fastconv
import fastconv.functional as F
from fastconv import nn
from fastconv._kernels import _pad
from reference import (NP_PAD_MODES, conv2d_padding_mode_ref, conv2d_ref, numerical_grad,
                       pad_backward_ref, pad_ref, random_array, tol)

MODES = ["constant", "reflect", "replicate", "circular"]
CONV_MODES = ["zeros", "reflect", "replicate", "circular"]
SIMD = ["avx512", "portable"] if _pad.AVX512_AVAILABLE else ["portable"]
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=SIMD)
def row_loops(request):
    """Run a test with the AVX-512 row loops (where the CPU has them) or the portable ones."""
    previous = _pad.use_avx512(request.param == "avx512")
    yield request.param
    _pad.use_avx512(previous)


def _limit(mode, n):
    """Largest pad each mode allows on a dimension of size n (no crops)."""
    return {"reflect": n - 1, "circular": n}.get(mode, 2 * n + 1)


def _valid(shape, pads, mode):
    """PyTorch's limits (restated here to draw valid cases): outputs >= 0; constant and
    circular crop at most the whole axis; reflect pads < the size; circular pads <= the
    size left after its crop."""
    for n, a, b in ((shape[3], pads[0], pads[1]), (shape[2], pads[2], pads[3])):
        kept = n + min(a, 0) + min(b, 0)
        if n + a + b < 0 or (mode in ("constant", "circular") and kept < 0):
            return False
        if mode == "reflect" and max(a, b) >= n:
            return False
        if mode == "circular" and max(a, b) > kept:
            return False
    return True


@st.composite
def pad_cases(draw, negative=False):
    """(shape, pad, mode): pads within the mode's limits, the limits themselves often;
    with ``negative``, crops too (past the size, for reflect and replicate)."""
    mode = draw(st.sampled_from(MODES))
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 40))  # W across the 16-lane vectors
    pads = []
    for n in (W, W, H, H):
        hi = _limit(mode, n)
        lo = -2 * n if negative and draw(st.booleans()) else 0
        pads.append(draw(st.one_of(st.just(hi), st.just(lo), st.integers(lo, hi))))
    assume(_valid((N, C, H, W), pads, mode))
    if draw(st.booleans()) and pads[2] == pads[3] == 0:
        pads = pads[:2]
    return (N, C, H, W), tuple(pads), mode


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@HYP
@given(case=pad_cases(), dtype=st.sampled_from([np.float32, np.float64]),
       layout=st.sampled_from(["C", "F", "strided"]), value=st.sampled_from([0.0, -1.5, np.inf]))
def test_pad_matches_np_pad(case, dtype, layout, value, threads, row_loops):
    shape, p, mode = case
    x = random_array(np.random.default_rng(0), shape, dtype, layout)
    value = value if mode == "constant" else 0.0
    y = fastconv.pad(x, p, mode, value)
    left, right, top, bottom = p + (0, 0) * (len(p) == 2)
    kw = {"constant_values": value} if mode == "constant" else {}
    ref = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), NP_PAD_MODES[mode], **kw)
    assert y.dtype == dtype and y.flags.c_contiguous
    np.testing.assert_array_equal(y, ref)


@HYP
@given(case=pad_cases(negative=True), dtype=st.sampled_from([np.float32, np.float64]))
def test_negative_pads_crop(case, dtype, row_loops):
    shape, p, mode = case
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(fastconv.pad(x, p, mode), pad_ref(x, p, mode))


def test_negative_constant_pads_are_slices(rng):
    x = rng.standard_normal((2, 3, 7, 9))
    np.testing.assert_array_equal(fastconv.pad(x, (-2, -3, -1, -4)), x[:, :, 1:3, 2:6])
    np.testing.assert_array_equal(fastconv.pad(x, (-9, 0)), x[:, :, :, 9:])  # all cropped
    y = fastconv.pad(x, (-2, 3, 1, -7), value=5.0)  # every row cropped: the top pad is left
    np.testing.assert_array_equal(y, np.full((2, 3, 1, 10), 5.0))
    z = fastconv.pad(x, (-2, 3, 0, -6), value=5.0)
    np.testing.assert_array_equal(z[:, :, :, :7], x[:, :, :1, 2:])
    np.testing.assert_array_equal(z[:, :, :, 7:], np.full((2, 3, 1, 3), 5.0))


def test_negative_pads_other_modes_follow_pytorch():
    # reflect/replicate pad from the uncropped input, then crop; circular crops, then wraps
    x = np.arange(6.0).reshape(1, 1, 1, 6)
    assert fastconv.pad(x, (-7, 5), "reflect").ravel().tolist() == [3, 2, 1, 0]
    assert fastconv.pad(x[..., :2], (-4, 7), "replicate").ravel().tolist() == [1] * 5
    assert fastconv.pad(x, (-1, 2), "reflect").ravel().tolist() == [1, 2, 3, 4, 5, 4, 3]
    assert fastconv.pad(x, (-4, 5), "reflect").ravel().tolist() == [4, 5, 4, 3, 2, 1, 0]
    assert fastconv.pad(x, (2, -1), "replicate").ravel().tolist() == [0, 0, 0, 1, 2, 3, 4]
    assert fastconv.pad(x, (-6, 6), "replicate").ravel().tolist() == [5] * 6
    assert fastconv.pad(x, (-1, 2), "circular").ravel().tolist() == [1, 2, 3, 4, 5, 1, 2]
    assert fastconv.pad(x, (2, -1), "circular").ravel().tolist() == [3, 4, 0, 1, 2, 3, 4]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@HYP
@given(case=st.one_of(pad_cases(), pad_cases(negative=True)))
def test_adjoint_identity(case, threads, row_loops):
    """<pad(x), g> == <x, pad_backward(g)> in float64, for every mode and crop."""
    shape, p, mode = case
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape)
    y = fastconv.pad(x, p, mode)
    g = rng.standard_normal(y.shape)
    gx = fastconv.pad_backward(g, shape, p, mode)
    assert gx.shape == shape and gx.flags.c_contiguous
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, gx), rtol=1e-12, atol=1e-12)
    # and element by element, against the padding written as a 0/1 matrix
    np.testing.assert_allclose(gx, pad_backward_ref(g, shape, p, mode), rtol=1e-12, atol=1e-12)


@HYP
@given(case=st.one_of(pad_cases(), pad_cases(negative=True)),
       dtype=st.sampled_from([np.float32, np.float64]), offset=st.integers(0, 15))
@example(case=((2, 1, 3, 2), (-4, 7), "replicate"), dtype=np.float64, offset=0)  # crops past the size
@example(case=((1, 2, 2, 6), (-7, 5, 1, 0), "reflect"), dtype=np.float32, offset=0)
def test_kernels_write_only_their_output(case, dtype, offset, row_loops):
    """The kernels fill arrays lying between guard zones of the same buffer (at any
    alignment): every element written, nothing outside (a stray write past the last
    plane corrupts the heap without changing any result)."""
    shape, p, mode = case
    x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    g = F.pad_geometry(shape, p, mode)
    for fill, size, shp, run in [
            (fastconv.pad(x, p, mode), g.OH * g.OW * shape[0] * shape[1], g.output_shape,
             lambda out: F.pad_unchecked(x, g, 0.0, out)),
            (pad_backward_ref(np.ones(g.output_shape), shape, p, mode), x.size, shape,
             lambda out: F.pad_backward_unchecked(np.ones(g.output_shape, dtype), g, out))]:
        buf = np.full(size + 128, 7.0, dtype)
        start = 48 + offset
        out = buf[start:start + size].reshape(shp)
        run(out)
        np.testing.assert_array_equal(out, fill)
        assert (buf[:start] == 7).all() and (buf[start + size:] == 7).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
def test_backward_accumulates_borders_into_sources(mode, dtype, row_loops):
    # pad 2 on 3x3 planes: corners and edges are copies of copies (gradients of up to 9
    # outputs meet in one input) -- checked against the 0/1 matrix of the padding
    shape, p = (2, 2, 3, 3), (2, 2, 2, 2)
    g = np.random.default_rng(3).standard_normal(fastconv.pad(np.zeros(shape, dtype), p, mode).shape)
    g = g.astype(dtype)
    np.testing.assert_allclose(fastconv.pad_backward(g, shape, p, mode),
                               pad_backward_ref(g, shape, p, mode), **tol(dtype))


@pytest.mark.parametrize("mode", MODES)
def test_results_do_not_depend_on_thread_count(mode, rng):
    x = rng.standard_normal((16, 32, 20, 17)).astype(np.float32)  # above the serial cut-off
    p = (2, 1, 3, 2)
    results = []
    for n in (1, 2, 3):
        fastconv.set_num_threads(n)
        y = fastconv.pad(x, p, mode)
        results.append((y, fastconv.pad_backward(y, x.shape, p, mode)))
    fastconv.set_num_threads(None)
    for y, gx in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(gx, results[0][1])


@pytest.mark.parametrize("mode", MODES)
def test_any_input_layout(mode, rng):
    x = rng.standard_normal((2, 3, 6, 5))
    p = (1, 2, 2, 1)
    ref = pad_ref(x, p, mode)
    g = rng.standard_normal(ref.shape)
    gref = pad_backward_ref(g, x.shape, p, mode)
    read_only = x.copy()
    read_only.flags.writeable = False
    g_read_only = g.copy()
    g_read_only.flags.writeable = False
    variants = [(np.asfortranarray(x), np.asfortranarray(g)),
                (np.repeat(x, 2, axis=3)[..., ::2], np.repeat(g, 2, axis=3)[..., ::2]),
                (read_only, g_read_only),
                (x.astype(">f8"), g.astype(">f8"))]  # byte-swapped
    for xv, gv in variants:
        np.testing.assert_array_equal(fastconv.pad(xv, p, mode), ref)
        # the adjoint sums up to 4 unit-variance terms per element, in the kernel's order
        # (the SIMD clone in use decides it): a few ulp of the summands, not of the sum
        np.testing.assert_allclose(fastconv.pad_backward(gv, x.shape, p, mode), gref, rtol=1e-14,
                                   atol=1e-15)
    assert read_only.flags.writeable is False


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5)])
def test_empty_batch_or_channels(mode, shape):
    x = np.zeros(shape, np.float32)
    y = fastconv.pad(x, (1, 2, 3, 1), mode)
    assert y.shape == shape[:2] + (8, 8) and y.dtype == np.float32
    gx = fastconv.pad_backward(y, shape, (1, 2, 3, 1), mode)
    assert gx.shape == shape


def test_empty_planes():
    # constant mode fills around an empty plane; zero pads of an empty axis are fine
    y = fastconv.pad(np.zeros((2, 1, 0, 3)), (1, 0, 2, 1), value=4.0)
    np.testing.assert_array_equal(y, np.full((2, 1, 3, 4), 4.0))
    np.testing.assert_array_equal(fastconv.pad_backward(y, (2, 1, 0, 3), (1, 0, 2, 1)),
                                  np.zeros((2, 1, 0, 3)))
    for mode in MODES:
        assert fastconv.pad(np.zeros((1, 1, 0, 3)), (1, 1), mode).shape == (1, 1, 0, 5)
    y = fastconv.pad(np.ones((1, 1, 3, 2)), (-1, -1), "constant")  # cropped to nothing
    assert y.shape == (1, 1, 3, 0)
    np.testing.assert_array_equal(fastconv.pad_backward(y, (1, 1, 3, 2), (-1, -1)),
                                  np.zeros((1, 1, 3, 2)))


def test_value_fills_only_the_padding(rng):
    x = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    y = fastconv.pad(x, (1, 1, 1, 1), value=np.nan)
    assert np.isnan(y[:, :, 0]).all() and np.isnan(y[:, :, :, -1]).all()
    np.testing.assert_array_equal(y[:, :, 1:-1, 1:-1], x)
    np.testing.assert_array_equal(fastconv.pad(x, (1, 1), "reflect", value=0.0),
                                  fastconv.pad(x, (1, 1), "reflect", value=None))


# --------------------------------------------------------------------------------------
# conv2d / conv2d_backward / nn.Conv2d with padding_mode
# --------------------------------------------------------------------------------------
# (x shape, weight shape, stride, padding, dilation, groups)
CONV_CASES = [
    ((1, 3, 5, 6), (4, 3, 3, 3), 1, 1, 1, 1),
    ((1, 2, 7, 6), (3, 2, 3, 2), 2, (2, 1), 1, 1),
    ((1, 4, 5, 6), (4, 2, 2, 4), 1, "same", 1, 2),  # even kernel: extra row/column bottom/right
    ((1, 2, 7, 7), (2, 2, 3, 2), 1, "same", (2, 1), 1),
    ((2, 1, 5, 5), (2, 1, 3, 3), (1, 2), (3, 4), 1, 1),  # padding up to the reflect limit
]


@pytest.mark.parametrize("padding_mode", CONV_MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_padding_mode_forward(case, padding_mode, rng):
    xs, ws, s, p, d, g = case
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0])
    for dtype in (np.float32, np.float64):
        y = fastconv.conv2d(x.astype(dtype), w.astype(dtype), b.astype(dtype), s, p, d, g,
                            padding_mode=padding_mode)
        ref = conv2d_padding_mode_ref(x, w, b, s, p, d, g, padding_mode)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, ref, **tol(dtype))


@pytest.mark.parametrize("padding_mode", CONV_MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_conv2d_padding_mode_gradients(case, padding_mode, rng):
    """conv2d_backward against float64 central differences of <conv2d(x, w, b), gy>."""
    xs, ws, s, p, d, g = case
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])

    def conv():
        return fastconv.conv2d(x, w, b, s, p, d, g, padding_mode=padding_mode)

    gy = rng.standard_normal(conv().shape)

    def loss():
        return float(np.vdot(conv(), gy))

    gx, gw, gb = fastconv.conv2d_backward(gy, x, w, s, p, d, g, padding_mode=padding_mode)
    np.testing.assert_allclose(gx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gw, numerical_grad(loss, w), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, numerical_grad(loss, b), rtol=1e-6, atol=1e-8)
    assert fastconv.conv2d_backward(gy, x, w, s, p, d, g, padding_mode=padding_mode,
                                    needs_input_grad=False)[0] is None


@pytest.mark.parametrize("padding_mode", ["reflect", "circular"])
def test_conv2d_padding_mode_empty_batch(padding_mode):
    x = np.zeros((0, 2, 5, 5), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    assert fastconv.conv2d(x, w, padding=1, padding_mode=padding_mode).shape == (0, 3, 5, 5)
    gx, gw, gb = fastconv.conv2d_backward(np.zeros((0, 3, 5, 5), np.float32), x, w, padding=1,
                                          padding_mode=padding_mode)
    assert gx.shape == x.shape and not gw.any() and not gb.any()


@pytest.mark.parametrize("padding_mode", CONV_MODES)
@pytest.mark.parametrize("padding,kernel,dilation", [(1, 3, 1), ("same", (2, 4), 1),
                                                     ("same", 3, 2), ((0, 2), (1, 3), 1)])
def test_conv_layer_padding_mode(padding_mode, padding, kernel, dilation, rng):
    layer = nn.Conv2d(2, 3, kernel, padding=padding, dilation=dilation, padding_mode=padding_mode,
                      rng=0, dtype=np.float64)
    x = rng.standard_normal((2, 2, 6, 7))
    y = layer(x)
    ref = conv2d_padding_mode_ref(x, layer.weight.data, layer.bias.data, 1, padding, dilation, 1,
                                  padding_mode)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(y.shape)
    gx = layer.backward(gy)

    def loss():
        return float(np.vdot(layer(x), gy))

    np.testing.assert_allclose(gx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.weight.grad, numerical_grad(loss, layer.weight.data),
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.bias.grad, numerical_grad(loss, layer.bias.data),
                               rtol=1e-6, atol=1e-8)
    # a second step on the reused buffers gives the same gradient
    layer.zero_grad()
    layer(x)
    np.testing.assert_array_equal(layer.backward(gy), gx)


def test_conv_layer_padding_mode_argument_and_repr():
    layer = nn.Conv2d(3, 4, 3, 1, 1, 1, 1, True, "circular")  # positional, as torch.nn.Conv2d
    assert layer.padding_mode == "circular" and layer.algorithm == "auto"
    assert repr(layer).endswith("padding=(1, 1), padding_mode=circular)")
    assert "padding_mode" not in repr(nn.Conv2d(3, 4, 3, padding=1))
    assert nn.Conv2d(3, 4, 3, 1, 1, 1, 1, True, "zeros", "im2col").algorithm == "im2col"


def test_conv_layer_float32_matches_functional(rng):
    layer = nn.Conv2d(3, 5, 3, stride=2, padding=1, padding_mode="replicate", rng=0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    ref = fastconv.conv2d(x, layer.weight.data, layer.bias.data, 2, 1, padding_mode="replicate")
    np.testing.assert_array_equal(layer(x), ref)
    gy = np.ones_like(ref)
    gx, gw, gb = fastconv.conv2d_backward(gy, x, layer.weight.data, 2, 1, padding_mode="replicate")
    np.testing.assert_array_equal(layer.backward(gy), gx)
    np.testing.assert_array_equal(layer.weight.grad, gw)


# --------------------------------------------------------------------------------------
# PyTorch cross-check (optional)
# --------------------------------------------------------------------------------------
@HYP
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 6), st.integers(1, 7)),
       pads=st.lists(st.integers(-7, 7), min_size=4, max_size=4), mode=st.sampled_from(MODES))
def test_pad_matches_torch(shape, pads, mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(4).standard_normal(shape)
    tx = torch.from_numpy(x).requires_grad_(True)
    try:
        ty = torch.nn.functional.pad(tx, tuple(pads), mode=mode)
    except (RuntimeError, NotImplementedError):
        try:
            y = fastconv.pad(x, tuple(pads), mode)
        except ValueError:
            return
        # torch's reflect/replicate kernels refuse an output with H = W = 0 (one of the
        # two empty is fine there); fastconv returns it, empty
        assert mode in ("reflect", "replicate") and y.shape[2:] == (0, 0)
        assert y.shape == pad_ref(x, tuple(pads), mode).shape
        return
    try:
        y = fastconv.pad(x, tuple(pads), mode)
    except ValueError:
        # refused only where torch reads uninitialised memory: circular, wrapping around
        # an input cropped to fewer elements than a pad
        assert mode == "circular" and min(pads) < 0
        return
    np.testing.assert_array_equal(y, ty.detach().numpy())
    g = np.random.default_rng(5).standard_normal(y.shape)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(fastconv.pad_backward(g, shape, tuple(pads), mode), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding_mode", CONV_MODES)
def test_conv_layer_matches_torch(padding_mode, rng):
    torch = pytest.importorskip("torch")
    layer = nn.Conv2d(2, 4, (2, 3), padding="same", padding_mode=padding_mode, rng=0,
                      dtype=np.float64)
    t = torch.nn.Conv2d(2, 4, (2, 3), padding="same", padding_mode=padding_mode, dtype=torch.float64)
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data))
        t.bias.copy_(torch.from_numpy(layer.bias.data))
    x = rng.standard_normal((2, 2, 5, 6))
    tx = torch.from_numpy(x).requires_grad_(True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "same" with an even kernel copies the input
        ty = t(tx)
    np.testing.assert_allclose(layer(x), ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    gy = rng.standard_normal(ty.shape)
    ty.backward(torch.from_numpy(gy))
    np.testing.assert_allclose(layer.backward(gy), tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, t.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
    assert repr(layer) == repr(t)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------
x8 = np.zeros((2, 3, 8, 8), np.float32)
g8 = np.zeros((2, 3, 10, 10), np.float32)
w3 = np.zeros((4, 3, 3, 3), np.float32)
MODE_CHOICES = "mode must be one of 'constant', 'reflect', 'replicate', 'circular', got"
PADDING_MODE_CHOICES = "padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got"

BAD_INPUT = [
    (lambda: fastconv.pad([[1.0]], (1, 1)), TypeError, "x must be a numpy.ndarray"),
    (lambda: fastconv.pad(x8[0], (1, 1)), ValueError, "x must be 4-D"),
    (lambda: fastconv.pad(x8.astype(int), (1, 1)), TypeError, "x must have dtype float32 or float64"),
    (lambda: fastconv.pad(x8.astype(np.float16), (1, 1)), TypeError, "float16"),
    (lambda: fastconv.pad(x8, 1), TypeError, "pad must be a tuple of 2 or 4 ints"),
    (lambda: fastconv.pad(x8, None), TypeError, "pad must be a tuple of 2 or 4 ints"),
    (lambda: fastconv.pad(x8, (1,)), ValueError, "pad must have 2 or 4 ints"),
    (lambda: fastconv.pad(x8, (1, 1, 1)), ValueError, "pad must have 2 or 4 ints"),
    (lambda: fastconv.pad(x8, (1,) * 6), ValueError, "pad must have 2 or 4 ints"),
    (lambda: fastconv.pad(x8, (1.0, 1)), TypeError, "pad must be a tuple of ints"),
    (lambda: fastconv.pad(x8, (1, True)), TypeError, "pad must be a tuple of ints"),
    (lambda: fastconv.pad(x8, (1, 1), mode="zeros"), ValueError, MODE_CHOICES),
    (lambda: fastconv.pad(x8, (1, 1), mode="edge"), ValueError, MODE_CHOICES),
    (lambda: fastconv.pad(x8, (1, 1), mode=None), ValueError, MODE_CHOICES),
    (lambda: fastconv.pad(x8, (1, 1), mode=["reflect"]), ValueError, MODE_CHOICES),
    (lambda: fastconv.pad(x8, (8, 0), "reflect"), ValueError,
     "mode='reflect' needs each pad < the size of its dimension (the edge is not repeated), got pad (8, 0) for W = 8"),
    (lambda: fastconv.pad(x8, (0, 0, 1, 8), "reflect"), ValueError, "got pad (1, 8) for H = 8"),
    (lambda: fastconv.pad(x8, (9, 0), "circular"), ValueError,
     "mode='circular' needs each pad <= the size of its dimension"),
    (lambda: fastconv.pad(x8, (-2, 7), "circular"), ValueError, "W = 8 cropped to 6"),
    (lambda: fastconv.pad(np.zeros((1, 1, 0, 4)), (0, 0, 1, 0), "replicate"), ValueError,
     "mode='replicate' cannot pad an empty dimension"),
    (lambda: fastconv.pad(x8, (-9, 2)), ValueError, "crops more than W = 8 holds"),
    (lambda: fastconv.pad(x8, (0, 0, -5, -4), "replicate"), ValueError, "crops more than the input has"),
    (lambda: fastconv.pad(x8, (1, 1), "reflect", value=1.0), ValueError,
     "value is only used with mode='constant'"),
    (lambda: fastconv.pad(x8, (1, 1), "circular", value=np.nan), ValueError, "value is only used"),
    (lambda: fastconv.pad(x8, (1, 1), value="0"), TypeError, "value must be a real number"),
    (lambda: fastconv.pad(x8, (1, 1), value=True), TypeError, "value must be a real number"),
    (lambda: fastconv.pad_backward([1.0], x8.shape, (1, 1, 1, 1)), TypeError,
     "grad_output must be a numpy.ndarray"),
    (lambda: fastconv.pad_backward(g8[0], x8.shape, (1, 1, 1, 1)), ValueError, "grad_output must be 4-D"),
    (lambda: fastconv.pad_backward(g8, x8.shape, (1, 1, 1, 2)), ValueError,
     "grad_output must have shape (2, 3, 11, 10)"),
    (lambda: fastconv.pad_backward(g8, (2, 3, 8), (1, 1, 1, 1)), ValueError,
     "input_shape must be a tuple of 4 ints"),
    (lambda: fastconv.pad_backward(g8, (2, 3, 8, -8), (1, 1, 1, 1)), ValueError, "input_shape must be >= 0"),
    (lambda: fastconv.pad_backward(g8, x8.shape, (1, 1, 1, 1), "mirror"), ValueError, MODE_CHOICES),
    (lambda: fastconv.pad_backward(g8, x8.shape, (1, 1, 8, 1), "reflect"), ValueError, "for H = 8"),
    (lambda: fastconv.pad_backward(g8.astype(np.int64), x8.shape, (1, 1, 1, 1)), TypeError,
     "grad_output must have dtype"),
    (lambda: fastconv.conv2d(x8, w3, padding=1, padding_mode="zero"), ValueError, PADDING_MODE_CHOICES),
    (lambda: fastconv.conv2d(x8, w3, padding=1, padding_mode="constant"), ValueError, PADDING_MODE_CHOICES),
    (lambda: fastconv.conv2d(x8, w3, padding=8, padding_mode="reflect"), ValueError,
     "mode='reflect' needs each pad < the size of its dimension"),
    (lambda: fastconv.conv2d(x8, w3, padding=9, padding_mode="circular"), ValueError, "mode='circular'"),
    (lambda: fastconv.conv2d_backward(np.zeros((2, 4, 8, 8), np.float32), x8, w3, padding=1,
                                      padding_mode=None), ValueError, PADDING_MODE_CHOICES),
    (lambda: nn.Conv2d(3, 4, 3, padding_mode="reflection"), ValueError, PADDING_MODE_CHOICES),
    (lambda: nn.Conv2d(3, 4, 3, padding=8, padding_mode="reflect")(x8), ValueError,
     "mode='reflect' needs each pad < the size"),
]


@pytest.mark.parametrize("call,exc,words", BAD_INPUT, ids=[str(i) for i in range(len(BAD_INPUT))])
def test_bad_input_raises_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_absurd_pad_is_refused_before_allocating():
    with pytest.raises(MemoryError, match="pad output would need"):
        fastconv.pad(np.zeros((1, 1, 1, 1), np.float32), (10**6,) * 4)
