"""nn.Add / Cat / Split (the Graph merge ops) and the pad layers (ZeroPad2d ... CircularPad2d):
forward against NumPy (np.add with broadcasting, np.concatenate, np.split, np.pad through
reference.pad_ref), backward against the adjoint identity <op(x), g> = <x, op.backward(g)>
and float64 central differences, input-gradient routing, bad-argument tables."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import nn
from reference import numerical_grad, pad_backward_ref, pad_ref, tol

DTYPES = [np.float32, np.float64]


# -- Add -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [
    [(2, 3, 4, 5), (2, 3, 4, 5)],
    [(2, 3, 4, 5), (2, 3, 4, 5), (2, 3, 4, 5)],
    [(2, 3, 4, 5), (3, 1, 1)],          # ONNX Add with a per-channel operand
    [(2, 3, 4, 5), (1, 3, 1, 1), (5,)],
    [(1, 3, 1, 5), (2, 1, 4, 1)],       # both operands broadcast
    [(4, 6), ()],                        # a scalar
])
def test_add_matches_numpy_and_reduces_gradients_over_broadcast_axes(rng, dtype, shapes):
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    add = nn.Add()
    y = add(*xs)
    want = xs[0].astype(np.float64)
    for x in xs[1:]:
        want = want + x
    np.testing.assert_allclose(y, want, **tol(dtype))
    assert y.dtype == dtype and y.shape == want.shape
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = add.backward(g)
    assert isinstance(grads, tuple) and len(grads) == len(xs)
    for x, gx in zip(xs, grads):
        assert gx.shape == x.shape and gx.dtype == dtype
        # the adjoint of broadcasting x to y's shape: sum g over the broadcast axes
        lead = g.ndim - x.ndim
        axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(x.shape) if n == 1 and g.shape[lead + i] != 1)
        np.testing.assert_allclose(gx, g.astype(np.float64).sum(axis=axes).reshape(x.shape), **tol(dtype))


def test_add_gradient_by_central_differences(rng):
    a, b = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((1, 3, 1, 1))
    add = nn.Add()
    g = rng.standard_normal((2, 3, 4, 4))
    add(a, b)
    ga, gb = add.backward(g)

    def f():
        return float(np.sum(add(a, b) * g))

    np.testing.assert_allclose(ga, numerical_grad(f, a), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(gb, numerical_grad(f, b), rtol=1e-7, atol=1e-8)


def test_add_output_is_its_own_array(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    add = nn.Add()
    y = add(a, b)
    assert not np.shares_memory(y, a) and not np.shares_memory(y, b)


# -- Cat -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, 2, 3, -1, -3])
def test_cat_matches_numpy_and_its_adjoint(rng, dtype, dim):
    base = (2, 3, 4, 5)
    sizes = [1, 3, 2]
    shapes = [base[:dim % 4] + (s,) + base[dim % 4 + 1:] for s in sizes]
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    cat = nn.Cat(dim)
    y = cat(*xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=dim))
    g = rng.standard_normal(y.shape).astype(dtype)
    grads = cat.backward(g)
    for gx, want in zip(grads, np.split(g, np.cumsum(sizes)[:-1], axis=dim)):
        np.testing.assert_array_equal(gx, want)
        assert gx.flags.c_contiguous
    # adjoint identity <cat(xs), g> = sum_i <x_i, g_i>
    lhs = np.sum(y.astype(np.float64) * g)
    rhs = sum(np.sum(x.astype(np.float64) * gx) for x, gx in zip(xs, grads))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_cat_of_one_input_is_a_copy(rng):
    x = rng.standard_normal((2, 3))
    y = nn.Cat(dim=0)(x)
    np.testing.assert_array_equal(y, x)
    assert not np.shares_memory(x, y)


# -- Split ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sections, dim", [(2, 1), (3, 1), ([1, 2, 3], 1), ([4, 0, 2], -1), (1, 0), ([2], 0)])
def test_split_matches_numpy_and_its_adjoint(rng, dtype, sections, dim):
    shape = [2, 6, 3, 6]
    x = rng.standard_normal(shape).astype(dtype)
    split = nn.Split(sections, dim)
    ys = split(x)
    pieces = np.split(x, sections if isinstance(sections, int) else np.cumsum(sections)[:-1], axis=dim)
    assert isinstance(ys, tuple) and len(ys) == len(pieces) == split.num_outputs
    for y, want in zip(ys, pieces):
        np.testing.assert_array_equal(y, want)
        assert y.flags.c_contiguous and not np.shares_memory(y, x)
    gs = [rng.standard_normal(y.shape).astype(dtype) for y in ys]
    gx = split.backward(tuple(gs))
    np.testing.assert_array_equal(gx, np.concatenate(gs, axis=dim))
    # an output nobody used: its gradient is None, counted as zeros
    gs_none = [None] + gs[1:]
    gx = split.backward(gs_none)
    np.testing.assert_array_equal(gx, np.concatenate([np.zeros_like(gs[0])] + gs[1:], axis=dim))


def test_split_gradient_by_central_differences(rng):
    x = rng.standard_normal((2, 5, 3))
    split = nn.Split([2, 3], dim=1)
    g = [rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 3, 3))]

    def f():
        a, b = split(x)
        return float(np.sum(np.tanh(a) * g[0]) + np.sum(b * b * g[1]))

    a, b = split(x)
    gx = split.backward(((1 - np.tanh(a) ** 2) * g[0], 2 * b * g[1]))
    np.testing.assert_allclose(gx, numerical_grad(f, x), rtol=1e-7, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_merge_ops_shape_sweep(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    ndim = data.draw(st.integers(1, 4))
    shape = [data.draw(st.integers(1, 4)) for _ in range(ndim)]
    dim = data.draw(st.integers(-ndim, ndim - 1))
    k = data.draw(st.integers(1, 4))
    sizes = [data.draw(st.integers(0, 3)) for _ in range(k)]
    shapes = [tuple(shape[:dim % ndim] + [s] + shape[dim % ndim + 1:]) for s in sizes]
    xs = [rng.standard_normal(s) for s in shapes]
    cat = nn.Cat(dim)
    y = cat(*xs)
    np.testing.assert_array_equal(y, np.concatenate(xs, axis=dim))
    split = nn.Split(sizes, dim)
    back = split(y)
    for a, b in zip(back, xs):
        np.testing.assert_array_equal(a, b)
    # Split and Cat are each other's adjoints
    g = rng.standard_normal(y.shape)
    for a, b in zip(cat.backward(g), split(g)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(split.backward(tuple(xs)), y)
    # Add with a broadcast operand: one of the axes (or leading ones) dropped to 1
    other = tuple(1 if data.draw(st.booleans()) else n for n in y.shape)[data.draw(st.integers(0, ndim)):]
    b = rng.standard_normal(other)
    add = nn.Add()
    np.testing.assert_array_equal(add(y, b), y + b)
    ga, gb = add.backward(g)
    np.testing.assert_array_equal(ga, g)
    lead = g.ndim - b.ndim
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(b.shape) if n == 1 and g.shape[lead + i] != 1)
    np.testing.assert_allclose(gb, g.sum(axis=axes).reshape(b.shape), rtol=1e-12, atol=1e-12)


def test_merge_ops_skip_input_gradients_nobody_needs(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    for op, args in ((nn.Add(), (a, b)), (nn.Cat(), (a, b))):
        y = op(*args)
        op.needs_input_grad = False
        assert op.backward(np.ones_like(y)) == (None, None)
    split = nn.Split(3)
    ys = split(a)
    split.needs_input_grad = False
    assert split.backward(tuple(np.ones_like(y) for y in ys)) is None


# -- padding layers ------------------------------------------------------------------------
PAD_LAYERS = [
    (lambda p: nn.ZeroPad2d(p), "constant", 0.0),
    (lambda p: nn.ConstantPad2d(p, 1.5), "constant", 1.5),
    (lambda p: nn.ReflectionPad2d(p), "reflect", 0.0),
    (lambda p: nn.ReplicationPad2d(p), "replicate", 0.0),
    (lambda p: nn.CircularPad2d(p), "circular", 0.0),
]


def _four(p):
    return (p,) * 4 if isinstance(p, int) else tuple(p)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make, mode, value", PAD_LAYERS)
@pytest.mark.parametrize("padding", [1, 2, (1, 0, 2, 3), (0, 3, 0, 1), (-1, 2, 1, -2), 0])
def test_pad_layers_match_np_pad_and_the_adjoint(rng, dtype, make, mode, value, padding):
    x = rng.standard_normal((2, 3, 5, 6)).astype(dtype)
    layer = make(padding)
    assert layer.padding == _four(padding) and layer.mode == mode and layer.value == value
    y = layer(x)
    np.testing.assert_array_equal(y, pad_ref(x, _four(padding), mode, value))
    g = rng.standard_normal(y.shape).astype(dtype)
    gx = layer.backward(g)
    np.testing.assert_allclose(gx, pad_backward_ref(g, x.shape, _four(padding), mode), **tol(dtype))
    assert gx.shape == x.shape and gx.dtype == dtype
    # adjoint identity <pad(x), g> = <x, pad_backward(g)> (the fill constant aside)
    y0 = make(padding)(x) - (pad_ref(np.zeros_like(x), _four(padding), mode, value) if value else 0)
    np.testing.assert_allclose(np.sum(y0.astype(np.float64) * g), np.sum(x.astype(np.float64) * gx),
                               rtol=1e-4 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("make, mode, value", PAD_LAYERS)
def test_pad_layers_take_chw_input_as_pytorch(rng, make, mode, value):
    x = rng.standard_normal((3, 4, 5))
    layer = make((1, 2, 2, 1))
    y = layer(x)
    np.testing.assert_array_equal(y, pad_ref(x[None], (1, 2, 2, 1), mode, value)[0])
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(g), pad_backward_ref(g[None], (1,) + x.shape, (1, 2, 2, 1), mode)[0],
                               rtol=1e-12, atol=1e-12)


def test_pad_layer_gradient_by_central_differences_through_a_conv(rng):
    model = nn.Sequential(nn.ReflectionPad2d((1, 2, 2, 1)), nn.Conv2d(2, 3, 3, rng=0, dtype=np.float64))
    x = rng.standard_normal((2, 2, 5, 5))
    y = model(x)
    g = rng.standard_normal(y.shape)
    gx = model.backward(g)

    def f():
        return float(np.sum(model(x) * g))

    np.testing.assert_allclose(gx, numerical_grad(f, x), rtol=1e-7, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_pad_layers_shape_sweep(data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    make, mode, value = data.draw(st.sampled_from(PAD_LAYERS))
    H, W = data.draw(st.integers(2, 6)), data.draw(st.integers(2, 6))
    limit = {"reflect": lambda n: n - 1, "circular": lambda n: n}.get(mode, lambda n: 4)
    padding = tuple(data.draw(st.integers(0, limit(n))) for n in (W, W, H, H))
    x = rng.standard_normal((data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)), H, W))
    layer = make(padding)
    y = layer(x)
    np.testing.assert_array_equal(y, pad_ref(x, padding, mode, value))
    g = rng.standard_normal(y.shape)
    np.testing.assert_allclose(layer.backward(g), pad_backward_ref(g, x.shape, padding, mode), rtol=1e-12, atol=1e-12)


def test_pad_layers_skip_the_input_gradient_nobody_needs(rng):
    layer = nn.ZeroPad2d(1)
    y = layer(rng.standard_normal((1, 1, 3, 3)))
    layer.needs_input_grad = False
    assert layer.backward(np.ones_like(y)) is None


def test_pad_layer_reprs_follow_pytorch():
    assert repr(nn.ZeroPad2d(1)) == "ZeroPad2d((1, 1, 1, 1))"
    assert repr(nn.ReflectionPad2d((1, 2, 3, 4))) == "ReflectionPad2d((1, 2, 3, 4))"
    assert repr(nn.ConstantPad2d(2, 0.5)) == "ConstantPad2d(padding=(2, 2, 2, 2), value=0.5)"
    assert repr(nn.Split([1, 2], dim=0)) == "Split(sections=[1, 2], dim=0)"
    assert repr(nn.Cat(-1)) == "Cat(dim=-1)" and repr(nn.Add()) == "Add()"


def test_pad_layers_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    pairs = [(nn.ZeroPad2d((1, 2, 0, 3)), torch.nn.ZeroPad2d((1, 2, 0, 3))),
             (nn.ConstantPad2d(2, -0.5), torch.nn.ConstantPad2d(2, -0.5)),
             (nn.ReflectionPad2d((2, 1, 3, 4)), torch.nn.ReflectionPad2d((2, 1, 3, 4))),
             (nn.ReplicationPad2d(3), torch.nn.ReplicationPad2d(3)),
             (nn.CircularPad2d((1, 2, 3, 4)), torch.nn.CircularPad2d((1, 2, 3, 4)))]
    for ours, theirs in pairs:
        t = torch.tensor(x, requires_grad=True)
        out = theirs(t)
        g = rng.standard_normal(out.shape).astype(np.float32)
        out.backward(torch.tensor(g))
        np.testing.assert_array_equal(ours(x), out.detach().numpy())
        np.testing.assert_allclose(ours.backward(g), t.grad.numpy(), rtol=1e-6, atol=1e-6)


# -- bad arguments -------------------------------------------------------------------------
a23 = np.zeros((2, 3))
x4 = np.zeros((1, 2, 4, 4))

BAD_CASES = [
    (lambda: nn.Add()(a23), ValueError, "Add needs at least 2 inputs, got 1"),
    (lambda: nn.Add()(a23, [1.0]), TypeError, "Add input 1 must be a numpy.ndarray"),
    (lambda: nn.Add()(a23, a23.astype(int)), TypeError, "Add input 1 must be a float32 or float64"),
    (lambda: nn.Add()(a23, a23.astype(np.float32)), TypeError, "input 0 is float64, input 1 is float32"),
    (lambda: nn.Add()(a23, a23, np.zeros((2, 4))), ValueError, "input 2 does not fit"),
    (lambda: nn.Add().backward(a23), RuntimeError, "before forward"),
    (lambda: nn.Cat()(), ValueError, "Cat needs at least 1 inputs, got 0"),
    (lambda: nn.Cat()(a23, np.zeros((3, 3))), ValueError, "input 0 has shape (2, 3), input 1 has shape (3, 3)"),
    (lambda: nn.Cat()(a23, np.zeros((2, 3, 1))), ValueError, "input 1 has shape (2, 3, 1)"),
    (lambda: nn.Cat(2)(a23, a23), ValueError, "Cat dim=2 is out of range"),
    (lambda: nn.Cat(1.0), TypeError, "dim must be an int"),
    (lambda: nn.Cat()(a23, a23.astype(np.float32)), TypeError, "input 1 is float32"),
    (lambda: nn.Split(0), ValueError, "sections must be positive"),
    (lambda: nn.Split(2.0), TypeError, "sections must be a positive int or a sequence"),
    (lambda: nn.Split([1, -1]), ValueError, "sections must be sizes >= 0"),
    (lambda: nn.Split([]), ValueError, "non-empty sequence"),
    (lambda: nn.Split([1, 2.5]), TypeError, "sections must be a positive int or a sequence of ints"),
    (lambda: nn.Split(2, dim="1"), TypeError, "dim must be an int"),
    (lambda: nn.Split(2)(np.zeros((2, 3))), ValueError, "does not divide dim 1 of size 3"),
    (lambda: nn.Split([1, 1])(np.zeros((2, 3))), ValueError, "sum to 2, but dim 1 has size 3"),
    (lambda: nn.Split(2, dim=3)(a23), ValueError, "Split dim=3 is out of range"),
    (lambda: nn.Split(2)([1.0]), TypeError, "Split input 0 must be a numpy.ndarray"),
    (lambda: nn.Split(2).backward((None, None)), RuntimeError, "before forward"),
    (lambda: nn.ZeroPad2d(1.0), TypeError, "padding must be an int or a tuple of 4 ints"),
    (lambda: nn.ZeroPad2d((1, 2)), ValueError, "padding must be an int or a tuple of 4 ints"),
    (lambda: nn.ZeroPad2d((1, 2, 3, True)), TypeError, "got bool True"),
    (lambda: nn.ZeroPad2d(None), TypeError, "padding must be an int"),
    (lambda: nn.ConstantPad2d(1, "0"), TypeError, "value must be a real number"),
    (lambda: nn.ConstantPad2d(1), TypeError, "value"),
    (lambda: nn.ZeroPad2d(1)(np.zeros((4, 4))), ValueError, "x must be 4-D"),
    (lambda: nn.ZeroPad2d(1)(x4.astype(int)), TypeError, "x must have dtype float32 or float64"),
    (lambda: nn.ReflectionPad2d(4)(x4), ValueError, "mode='reflect' needs each pad < the size"),
    (lambda: nn.CircularPad2d(5)(x4), ValueError, "mode='circular' needs each pad <= the size"),
    (lambda: nn.ZeroPad2d(-3)(x4), ValueError, "crops more than"),
    (lambda: nn.ZeroPad2d(1).backward(x4), RuntimeError, "before forward"),
]


def _split_backward_case(grads):
    s = nn.Split(2)
    s(np.zeros((1, 4, 2)))
    return s.backward(grads)


def _pad_backward_case(g):
    p = nn.ZeroPad2d(1)
    p(x4)
    return p.backward(g)


def _add_backward_case(g):
    add = nn.Add()
    add(a23, a23)
    return add.backward(g)


BAD_CASES += [
    (lambda: _split_backward_case(np.zeros((1, 2, 2))), TypeError, "takes a tuple of 2 gradients"),
    (lambda: _split_backward_case((None,)), ValueError, "takes 2 gradients, one per output, got 1"),
    (lambda: _split_backward_case((None, np.zeros((1, 3, 2)))), ValueError, "grads[1] must have shape (1, 2, 2)"),
    (lambda: _split_backward_case((None, "g")), TypeError, "grads[1] must be a numpy.ndarray"),
    (lambda: _pad_backward_case(x4), ValueError, "grad_output must have shape (1, 2, 6, 6)"),
    (lambda: _pad_backward_case(None), TypeError, "grad_output must be a numpy.ndarray"),
    (lambda: _add_backward_case(np.zeros((3, 2))), ValueError, "grad_output must have shape (2, 3)"),
]


@pytest.mark.parametrize("call, exc, words", BAD_CASES)
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
