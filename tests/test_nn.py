"""Layers, models and optimizers: finite-difference gradients (float64) and behaviour."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import nn, optim
from fastconv.models import lenet5
from reference import (adam_steps_ref, numerical_grad, numerical_grad_at, sgd_steps_ref,
                       synthetic_digits, tol)


def _check_layer(layer, x, rng, rtol=1e-6, atol=1e-8):
    """Compare layer.backward and parameter grads with central differences of <layer(x), g>."""
    layer.zero_grad()
    y = layer(x)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)

    def loss():
        return float(np.sum(layer(x) * g))

    if gx is not None:
        np.testing.assert_allclose(gx, numerical_grad(loss, x), rtol=rtol, atol=atol)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, numerical_grad(loss, p.data), rtol=rtol, atol=atol, err_msg=name)


LAYERS = [
    ("conv", lambda: nn.Conv2d(3, 4, 3, padding=1, rng=0, dtype=np.float64), (2, 3, 6, 5)),
    ("conv_strided_grouped", lambda: nn.Conv2d(4, 6, (3, 2), stride=2, padding="valid", groups=2, rng=1,
                                               dtype=np.float64), (2, 4, 7, 6)),
    ("conv_same_dilated", lambda: nn.Conv2d(2, 3, 3, padding="same", dilation=2, bias=False, rng=2,
                                            dtype=np.float64), (1, 2, 7, 7)),
    ("maxpool", lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    ("maxpool_ceil_pad", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True), (1, 2, 6, 7)),
    ("avgpool", lambda: nn.AvgPool2d(2), (2, 3, 6, 6)),
    ("avgpool_pad", lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), (1, 2, 7, 6)),
    ("linear", lambda: nn.Linear(7, 5, rng=3, dtype=np.float64), (4, 7)),
    ("relu", nn.ReLU, (3, 8)),
    ("leaky_relu", lambda: nn.LeakyReLU(0.1), (3, 8)),
    ("elu", lambda: nn.ELU(0.7), (3, 8)),
    ("tanh", nn.Tanh, (3, 8)),
    ("sigmoid", nn.Sigmoid, (3, 8)),
    ("flatten", nn.Flatten, (2, 3, 2, 2)),
]


@pytest.mark.parametrize("make,shape", [(m, s) for _, m, s in LAYERS], ids=[n for n, _, _ in LAYERS])
def test_layer_gradients(make, shape, rng):
    _check_layer(make(), rng.standard_normal(shape), rng)


def test_conv_layer_matches_functional(rng):
    layer = nn.Conv2d(3, 5, 3, stride=2, padding=1, rng=0)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    ref = fastconv.conv2d(x, layer.weight.data, layer.bias.data, 2, 1)
    np.testing.assert_array_equal(layer(x), ref)


def test_dropout_train_and_eval(rng):
    d = nn.Dropout(0.25, rng=np.random.default_rng(0))
    x = np.ones((200, 100))
    y = d(x)
    kept = y != 0
    assert 0.70 < kept.mean() < 0.80
    np.testing.assert_allclose(y[kept], 1 / 0.75)  # inverted dropout keeps the expectation
    g = d.backward(np.ones_like(x))
    np.testing.assert_array_equal(g, y)  # same mask, same scale
    d.eval()
    np.testing.assert_array_equal(d(x), x)
    np.testing.assert_array_equal(d.backward(x), x)
    assert not nn.Dropout(1.0)(x).any()


def test_cross_entropy_matches_definition_and_gradient(rng):
    logits = rng.standard_normal((5, 4)) * 3
    for dtype in (np.int64, np.uint8, np.int32):
        labels = np.array([0, 3, 1, 1, 2], dtype=dtype)
        loss = nn.CrossEntropyLoss()
        value = loss(logits, labels)
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        assert isinstance(value, float)
        np.testing.assert_allclose(value, -np.log(p[np.arange(5), labels.astype(int)]).mean(), rtol=1e-12)
        num = numerical_grad(lambda: nn.CrossEntropyLoss()(logits, labels), logits)
        np.testing.assert_allclose(loss.backward(), num, rtol=1e-6, atol=1e-9)
    # stable for huge logits
    assert np.isfinite(nn.CrossEntropyLoss()(np.array([[1e4, -1e4]]), np.array([1])))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_cross_entropy_dtypes_layouts_and_nan(dtype, rng):
    logits64 = rng.standard_normal((64, 10)) * 4
    labels = rng.integers(0, 10, 64)
    p = np.exp(logits64 - logits64.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    want = -np.log(p[np.arange(64), labels]).mean()
    want_grad = (p - np.eye(10)[labels]) / 64
    # a Fortran-ordered copy exercises the non-contiguous path
    for logits in (logits64.astype(dtype), np.asfortranarray(logits64.astype(dtype))):
        loss = nn.CrossEntropyLoss()
        value = loss(logits, labels)
        grad = loss.backward()
        assert grad.dtype == dtype and grad.shape == (64, 10)
        rtol = {np.float16: 2e-3, np.float32: 1e-5, np.float64: 1e-12}[dtype]
        exact = logits.astype(np.float64)  # the rounded logits are the input
        q = np.exp(exact - exact.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        np.testing.assert_allclose(value, -np.log(q[np.arange(64), labels]).mean(), rtol=rtol)
        np.testing.assert_allclose(grad, (q - np.eye(10)[labels]) / 64, rtol=rtol, atol=rtol / 64)
    assert abs(value - want) < 0.05 and np.abs(grad - want_grad).max() < 1e-3
    # a NaN logit makes its sample's loss and gradient NaN, and only its own
    bad = logits64.astype(dtype)
    bad[3, 7] = np.nan
    loss = nn.CrossEntropyLoss()
    assert np.isnan(loss(bad, labels))
    grad = loss.backward()
    assert np.isnan(grad[3]).all() and np.isfinite(np.delete(grad, 3, axis=0)).all()


def test_lenet5_whole_model_gradient(rng):
    model = lenet5(rng=0, dtype=np.float64)
    model.needs_input_grad = model[0].needs_input_grad = True  # also check the input gradient end to end
    x = rng.standard_normal((2, 1, 28, 28))
    labels = np.array([3, 7])
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    loss(model(x), labels)
    gx = model.backward(loss.backward())

    def f():
        return nn.CrossEntropyLoss()(model(x), labels)

    idx = rng.choice(x.size, 25, replace=False)
    np.testing.assert_allclose(gx.reshape(-1)[idx], numerical_grad_at(f, x, idx), rtol=1e-5, atol=1e-8)
    for name, p in model.named_parameters():
        idx = rng.choice(p.data.size, min(15, p.data.size), replace=False)
        np.testing.assert_allclose(p.grad.reshape(-1)[idx], numerical_grad_at(f, p.data, idx),
                                   rtol=1e-5, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("activation,pool", [("relu", "max"), ("tanh", "avg")])
def test_lenet5_overfits_small_batch(activation, pool):
    rng = np.random.default_rng(0)
    images, labels = synthetic_digits(64, rng)
    x = ((images / 255.0 - 0.13) / 0.31).astype(np.float32)[:, None]
    model = lenet5(activation=activation, pool=pool, rng=1)
    opt = optim.Adam(model.parameters(), lr=2e-3)
    loss = nn.CrossEntropyLoss()
    losses = []
    for _ in range(60):
        losses.append(loss(model(x), labels))
        opt.zero_grad()
        model.backward(loss.backward())
        opt.step()
    model.eval()
    assert (model(x).argmax(1) == labels).mean() == 1.0
    # decreasing on average: each window of 10 steps is below the previous one
    means = np.array(losses).reshape(6, 10).mean(1)
    assert np.all(np.diff(means) < 0), means


def test_state_dict_roundtrip_and_errors(rng):
    a, b = lenet5(rng=0), lenet5(rng=1)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    assert not np.array_equal(a(x), b(x))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(x), b(x))
    sd = a.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias",
                        "9.weight", "9.bias", "11.weight", "11.bias"]
    sd["0.weight"][...] = 7  # a copy: the model is unchanged
    assert not (a[0].weight.data == 7).any()
    with pytest.raises(KeyError, match="missing keys \\['0.bias'\\]"):
        b.load_state_dict({k: v for k, v in a.state_dict().items() if k != "0.bias"})
    with pytest.raises(KeyError, match="unexpected keys \\['extra'\\]"):
        b.load_state_dict({**a.state_dict(), "extra": np.zeros(1)})
    with pytest.raises(ValueError, match="has shape \\(5,\\)"):
        b.load_state_dict({**a.state_dict(), "0.bias": np.zeros(5)})
    b.load_state_dict({"0.bias": np.zeros(6)}, strict=False)
    assert not b[0].bias.data.any()


def test_train_eval_flags_propagate_and_repr():
    m = lenet5()
    assert all(x.training for x in m.modules())
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    text = repr(m)
    assert "Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))" in text
    assert "(7): Linear(in_features=400, out_features=120, bias=True)" in text


def test_seeded_initialisation_is_reproducible():
    fastconv.manual_seed(5)
    a = lenet5().state_dict()
    fastconv.manual_seed(5)
    b = lenet5().state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    w = nn.Conv2d(6, 16, 5, rng=0).weight.data
    bound = 1 / np.sqrt(6 * 25)
    assert w.dtype == np.float32 and np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound


def _param(values):
    p = nn.Parameter(np.array(values, dtype=np.float64))
    return p


def test_sgd_momentum_nesterov_weight_decay_by_hand():
    p = _param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    p.grad[...] = g1
    opt.step()
    d1 = g1 + 0.01 * np.array([1.0, -2.0])
    w1 = np.array([1.0, -2.0]) - 0.1 * d1
    np.testing.assert_allclose(p.data, w1)
    p.grad[...] = g2
    opt.step()
    d2 = g2 + 0.01 * w1
    buf = 0.9 * d1 + d2
    np.testing.assert_allclose(p.data, w1 - 0.1 * buf)
    # Nesterov: p -= lr * (g + momentum * buf)
    q = _param([1.0])
    nes = optim.SGD([q], lr=0.5, momentum=0.5, nesterov=True)
    q.grad[...] = 2.0
    nes.step()  # buf = 2, step = 2 + 0.5 * 2 = 3
    np.testing.assert_allclose(q.data, [1.0 - 0.5 * 3])
    q.grad[...] = 1.0
    nes.step()  # buf = 0.5 * 2 + 1 = 2, step = 1 + 0.5 * 2 = 2
    np.testing.assert_allclose(q.data, [1.0 - 1.5 - 0.5 * 2])


def test_adam_bias_correction_by_hand():
    p = _param([0.5])
    opt = optim.Adam([p], lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    w = 0.5
    m = v = 0.0
    for t, g in enumerate([0.2, -0.4, 0.1], start=1):
        p.grad[...] = g
        opt.step()
        m = 0.9 * m + 0.1 * g
        v = 0.99 * v + 0.01 * g * g
        w -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        np.testing.assert_allclose(p.data, [w], rtol=1e-12)
    # the first step has magnitude lr whatever the gradient's scale (bias correction)
    q = _param([0.0])
    o = optim.Adam([q], lr=0.01)
    q.grad[...] = 1e-3
    o.step()
    np.testing.assert_allclose(q.data, [-0.01], rtol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda ps: optim.SGD(ps, lr=0.1),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
        lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
    ],
    ids=["sgd", "momentum-wd", "nesterov", "adam"],
)
def test_compiled_update_matches_numpy_path(make, dtype, rng):
    # A parameter whose arrays are strided views cannot take the compiled loop and runs
    # the NumPy update instead: both must follow the same rule.
    fused = nn.Parameter(rng.standard_normal((3, 4)).astype(dtype))
    strided = nn.Parameter(fused.data)
    strided.data = np.zeros((3, 8), dtype)[:, ::2]
    strided.data[...] = fused.data
    strided.grad = np.zeros((3, 8), dtype)[:, ::2]
    opt_fused, opt_numpy = make([fused]), make([strided])
    for _ in range(4):
        g = rng.standard_normal((3, 4)).astype(dtype)
        fused.grad[...] = g
        strided.grad[...] = g
        opt_fused.step()
        opt_numpy.step()
    assert not strided.data.flags.c_contiguous
    np.testing.assert_allclose(fused.data, strided.data, **tol(dtype))


OPTIMIZERS = {
    "sgd": (dict(lr=0.1), sgd_steps_ref),
    "momentum-wd": (dict(lr=0.1, momentum=0.9, weight_decay=0.01), sgd_steps_ref),
    "nesterov": (dict(lr=0.05, momentum=0.9, nesterov=True), sgd_steps_ref),
    "adam": (dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1), adam_steps_ref),
}


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_of_mixed_parameter_list_matches_reference(name, threads, rng):
    # One compiled call per dtype covers the fusable parameters laid end to end, split
    # between threads at element boundaries that fall inside parameters (sizes above the
    # parallel threshold, odd, one of them empty); a strided one takes the NumPy rule.
    kwargs, ref = OPTIMIZERS[name]
    shapes = [((151, 97), np.float32), ((3,), np.float64), ((0, 4), np.float32),
              ((20011,), np.float32), ((7, 5), np.float64), ((5, 3), np.float32)]
    params = [nn.Parameter(rng.standard_normal(s).astype(d)) for s, d in shapes]
    strided = nn.Parameter(np.zeros((4, 3)))
    strided.data = rng.standard_normal((4, 6))[:, ::2]
    strided.grad = np.zeros((4, 6))[:, ::2]
    params.append(strided)
    start = [p.data.copy() for p in params]
    history = [[] for _ in params]
    opt = (optim.Adam if name == "adam" else optim.SGD)(params, **kwargs)
    for _ in range(3):
        for p, h in zip(params, history):
            p.grad[...] = rng.standard_normal(p.shape)
            h.append(p.grad.copy())
        opt.step()
    for i, (p, p0, h) in enumerate(zip(params, start, history)):
        np.testing.assert_allclose(p.data, ref(p0, h, **kwargs), **tol(p.dtype), err_msg=f"params[{i}]")


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_does_not_depend_on_thread_count(name, rng):
    kwargs, _ = OPTIMIZERS[name]
    data = [rng.standard_normal(n).astype(np.float32) for n in (30001, 17, 40000)]
    grads = [[rng.standard_normal(d.shape).astype(np.float32) for d in data] for _ in range(3)]
    results = []
    for n_threads in (1, 2, 3):
        fastconv.set_num_threads(n_threads)
        try:
            params = [nn.Parameter(d) for d in data]
            opt = (optim.Adam if name == "adam" else optim.SGD)(params, **kwargs)
            for step in grads:
                for p, g in zip(params, step):
                    p.grad[...] = g
                opt.step()
        finally:
            fastconv.set_num_threads(None)
        results.append(np.concatenate([p.data for p in params]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_update_follows_replaced_arrays(rng):
    # The compiled call works on addresses gathered once; a parameter whose data or grad
    # array is replaced (or made read-only) between steps must be noticed.
    p = nn.Parameter(rng.standard_normal(6))
    opt = optim.SGD([p], lr=0.5, momentum=0.5)
    p.grad[...] = 1.0
    opt.step()
    old = p.data
    old_values = old.copy()
    p.data = np.zeros(6)
    p.grad = np.full(6, 2.0)
    opt.step()  # buf = 0.5 * 1 + 2 = 2.5
    np.testing.assert_allclose(p.data, np.full(6, -1.25))
    np.testing.assert_array_equal(old, old_values)  # the replaced array is left alone
    before = old.copy()
    p.data = old
    p.data.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        opt.step()
    np.testing.assert_array_equal(p.data, before)


@pytest.mark.parametrize(
    "make,exc,words",
    [
        (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels must be positive"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "divisible by groups"),
        (lambda: nn.Conv2d(3, 4, 3, padding="full"), ValueError, "'valid' or 'same'"),
        (lambda: nn.Conv2d(3, 4, 3, stride=2, padding="same"), ValueError, "stride 1"),
        (lambda: nn.Conv2d(3, 4, 3, algorithm="fft"), ValueError, "algorithm must be one of"),
        (lambda: nn.Conv2d(3, 4, 2.5), TypeError, "kernel_size must be an int or a pair"),
        (lambda: nn.Conv2d(3, 4, 3, bias="yes"), TypeError, "bias must be a bool"),
        (lambda: nn.Conv2d(3, 4, 3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
        (lambda: nn.MaxPool2d(2, padding=2), ValueError, "at most half of kernel_size"),
        (lambda: nn.AvgPool2d(0), ValueError, "kernel_size must be positive"),
        (lambda: nn.Linear(-1, 3), ValueError, "in_features must be positive"),
        (lambda: nn.Dropout(1.5), ValueError, "p must be in [0, 1]"),
        (lambda: nn.Dropout("a"), TypeError, "p must be a float"),
        (lambda: nn.LeakyReLU("a"), TypeError, "negative_slope"),
        (lambda: nn.Sequential(nn.ReLU(), 3), TypeError, "Sequential layer 1 must be a Module"),
        (lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
        (lambda: optim.SGD([np.zeros(2)], lr=0.1), TypeError, "params[0] must be a fastconv.nn.Parameter"),
        (lambda: optim.SGD(lenet5().parameters(), lr=-1), ValueError, "lr must be a finite number >= 0"),
        (lambda: optim.SGD(lenet5().parameters(), lr=0.1, nesterov=True), ValueError, "requires momentum"),
        (lambda: optim.Adam(lenet5().parameters(), betas=(0.9, 1.0)), ValueError, "betas[1] must be < 1.0"),
        (lambda: lenet5(activation="gelu"), ValueError, "activation must be one of"),
        (lambda: fastconv.manual_seed(-1), ValueError, "seed must be a non-negative int"),
    ],
)
def test_constructor_errors(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)


def test_layer_call_errors(rng):
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="expects x with 3 channels"):
        conv(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(TypeError, match="float64 but the layer's weight is float32"):
        conv(np.zeros((1, 3, 8, 8)))
    for layer, x in ((nn.Conv2d(3, 4, 3), np.zeros((1, 3, 8, 8), np.float32)),
                     (nn.Linear(3, 4), np.zeros((2, 3), np.float32))):
        layer.bias.data = layer.bias.data.astype(np.float64)  # reassigned: a clear error, not Cython's
        with pytest.raises(TypeError, match="bias has dtype float64 but its weight is float32"):
            layer(x)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Conv2d(3, 4, 3).backward(np.zeros((1, 4, 6, 6), np.float32))
    conv(np.zeros((1, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="grad_output must have shape \\(1, 4, 6, 6\\)"):
        conv.backward(np.zeros((1, 4, 5, 6), np.float32))
    with pytest.raises(ValueError, match="labels must be in \\[0, 3\\)"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(TypeError, match="labels must be an integer array"):
        nn.CrossEntropyLoss()(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="Linear expects x of shape \\(N, 400\\)"):
        nn.Linear(400, 3)(np.zeros((2, 399), np.float32))


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_at_lenet_size_matches_numpy(dtype, threads, simd, rng):
    """LeNet's first fully connected layer is big enough for the threaded paths (float32
    on AVX-512: blocks of the products shared between threads; BLAS: two GEMMs at once in
    backward, the batch split in two in forward); it must equal plain NumPy."""
    layer = nn.Linear(400, 120, rng=0, dtype=dtype)
    x = rng.standard_normal((64, 400)).astype(dtype)
    g = rng.standard_normal((64, 120)).astype(dtype)
    w, b = layer.weight.data.astype(np.float64), layer.bias.data.astype(np.float64)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    y = layer(x)
    layer.weight.grad[...] = 1.0  # backward accumulates into the existing gradient
    gi = layer.backward(g)
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, x64 @ w.T + b, **t)
    np.testing.assert_allclose(gi, g64 @ w, **t)
    np.testing.assert_allclose(layer.weight.grad, 1.0 + g64.T @ x64, **t)
    np.testing.assert_allclose(layer.bias.grad, g64.sum(0), **t)


@pytest.mark.parametrize("threads", [1, 2, 3], indirect=True)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), n_in=st.integers(1, 70), n_out=st.integers(1, 45),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_linear_products_any_size(n, n_in, n_out, bias, seed, threads, simd):
    # Sizes around the kernels' blocks (4 x 4, 8 x 32, 16 lanes of k) and below them;
    # bias and grad_bias are fused into the AVX-512 products.
    rng = np.random.default_rng(seed)
    layer = nn.Linear(n_in, n_out, bias=bias, rng=seed)
    x = rng.standard_normal((n, n_in)).astype(np.float32)
    g = rng.standard_normal((n, n_out)).astype(np.float32)
    w = layer.weight.data.astype(np.float64)
    b = layer.bias.data.astype(np.float64) if bias else 0.0
    start = rng.standard_normal(w.shape).astype(np.float32)
    layer.weight.grad[...] = start
    if bias:
        layer.bias.grad[...] = 0.5
    y = layer(x)
    gi = layer.backward(g)
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    np.testing.assert_allclose(y, x64 @ w.T + b, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gi, g64 @ w, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.weight.grad, start + g64.T @ x64, rtol=1e-4, atol=1e-4)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, 0.5 + g64.sum(0), rtol=1e-4, atol=1e-4)


def test_linear_is_deterministic(simd, rng):
    # The AVX-512 products sum every element on one thread in a fixed order whatever the
    # thread count; BLAS (portable) blocks a half batch differently from a whole one, so
    # there only a fixed thread count repeats exactly.
    x = rng.standard_normal((64, 400)).astype(np.float32)
    g = rng.standard_normal((64, 120)).astype(np.float32)
    results = []
    for n_threads in (1, 2, 3) if simd == "avx512" else (2, 2):
        fastconv.set_num_threads(n_threads)
        try:
            layer = nn.Linear(400, 120, rng=0)
            y = layer(x)
            results.append((y, layer.backward(g), layer.weight.grad.copy()))
        finally:
            fastconv.set_num_threads(None)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_label_smoothing_against_formula(rng, eps, dtype):
    logits = (3 * rng.standard_normal((7, 6))).astype(dtype)
    labels = rng.integers(0, 6, 7)
    z = logits.astype(np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    target = (1 - eps) * np.eye(6)[labels] + eps / 6
    want = -(target * logp).sum(1).mean()
    loss = nn.CrossEntropyLoss(label_smoothing=eps)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss(logits, labels), want, rtol=rtol)
    np.testing.assert_allclose(loss.backward(), (np.exp(logp) - target) / 7, rtol=rtol, atol=rtol / 7)


@pytest.mark.parametrize("bad,err", [(-0.1, ValueError), (1.5, ValueError), ("0.1", TypeError), (True, TypeError)])
def test_cross_entropy_label_smoothing_checked(bad, err):
    with pytest.raises(err, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=bad)
