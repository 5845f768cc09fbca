"""fastconv.inference.compile: the planned eval-mode path against the layers' own forward
(``model.eval()(x)``), BatchNorm folding against its NumPy formula, the fused epilogues
against the unfused steps, re-planning, snapshots and bad inputs."""
import copy

import numpy as np
import pytest

import fastconv
from fastconv import inference, models, nn
from reference import tol

DTYPES = [np.float32, np.float64]


def _randomize_bn(model, rng):
    """Non-trivial running statistics and affine parameters (fresh ones fold to identity)."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            if m.track_running_stats:
                m.running_mean[...] = rng.standard_normal(c) * 0.2
                m.running_var[...] = rng.uniform(0.5, 2.0, c)
            if m.affine:
                m.weight.data[...] = rng.uniform(0.5, 1.5, c)
                m.bias.data[...] = rng.standard_normal(c) * 0.2
    return model


def _reference(model, x):
    """model.eval()(x), leaving the model's mode as it was."""
    was = model.training
    model.eval()
    try:
        return model(x).copy()
    finally:
        model.train(was)


def _check(model, shape, dtype, measure=False, rng=None):
    rng = np.random.default_rng(0) if rng is None else rng
    x = rng.standard_normal(shape).astype(dtype)
    plan = inference.compile(model, shape, dtype=dtype, measure=measure)
    y = plan(x)
    np.testing.assert_allclose(y, _reference(model, x), **tol(dtype))
    return plan, x, y


# -- every model in fastconv.models ---------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_models_match_eval_forward(name, batch, dtype):
    if batch == 64 and name in ("resnet20", "vgg_small") and dtype == np.float64:
        pytest.skip("covered at float32 (slow at float64)")
    model = _randomize_bn(models.MODELS[name](rng=0, dtype=dtype), np.random.default_rng(1))
    _check(model, (batch, 1, 28, 28), dtype)


@pytest.mark.parametrize("name", ["lenet5", "resnet8"])
def test_models_measured_plan(name):
    """With measure=True (thread counts and algorithms chosen by timing) the results are
    the same up to rounding (Winograd / im2col may be chosen for some layers)."""
    model = _randomize_bn(models.MODELS[name](rng=0), np.random.default_rng(1))
    for batch in (1, 64):
        _check(model, (batch, 1, 28, 28), np.float32, measure=True)


def test_lenet_tanh_avg_variant():
    model = models.lenet5(activation="tanh", pool="avg", rng=0)
    for dtype in DTYPES:
        _check(model.astype(dtype) if dtype != np.float32 else model, (3, 1, 28, 28), dtype)


# -- hand-built networks --------------------------------------------------------------------
def _conv_nets(dtype):
    kw = dict(rng=0, dtype=dtype)
    return {
        "conv_bias": nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, **kw)),
        "conv_no_bias": nn.Sequential(nn.Conv2d(3, 8, 3, bias=False, **kw), nn.ReLU()),
        "groups": nn.Sequential(nn.Conv2d(3, 6, 3, groups=3, padding=1, **kw), nn.ReLU(),
                                nn.Conv2d(6, 8, 3, groups=2, stride=2, **kw)),
        "depthwise": nn.Sequential(nn.Conv2d(3, 6, 1, **kw),
                                   nn.Conv2d(6, 6, 3, groups=6, padding=1, **kw),
                                   nn.BatchNorm2d(6, dtype=dtype), nn.ReLU()),
        "stride_dilation": nn.Sequential(nn.Conv2d(3, 20, (3, 5), stride=(2, 1), dilation=(1, 2),
                                                   padding=(1, 2), **kw), nn.ReLU()),
        "same": nn.Sequential(nn.Conv2d(3, 5, 4, padding="same", **kw)),
        "reflect": nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, padding_mode="reflect", **kw),
                                 nn.ReLU()),
        "replicate": nn.Sequential(nn.Conv2d(3, 6, 3, padding=2, padding_mode="replicate", **kw)),
        "circular": nn.Sequential(nn.Conv2d(3, 40, 3, padding=1, padding_mode="circular", **kw),
                                  nn.BatchNorm2d(40, dtype=dtype)),
        "bn_after_conv": nn.Sequential(nn.Conv2d(3, 16, 3, **kw), nn.BatchNorm2d(16, dtype=dtype),
                                       nn.ReLU(), nn.Conv2d(16, 33, 1, **kw),
                                       nn.BatchNorm2d(33, dtype=dtype)),
        "bn_without_conv": nn.Sequential(nn.BatchNorm2d(3, dtype=dtype), nn.ReLU(),
                                         nn.Conv2d(3, 4, 3, **kw), nn.MaxPool2d(2),
                                         nn.BatchNorm2d(4, dtype=dtype)),
        "bn_no_affine": nn.Sequential(nn.Conv2d(3, 4, 3, **kw),
                                      nn.BatchNorm2d(4, affine=False, dtype=dtype)),
        "bn_batch_stats": nn.Sequential(nn.Conv2d(3, 4, 3, **kw),
                                        nn.BatchNorm2d(4, track_running_stats=False, dtype=dtype)),
        "residual_projection": nn.Sequential(models.basic_block(3, 8, 2, rng=0, dtype=dtype)),
        "residual_identity": nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, **kw),
            nn.Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, **kw), nn.ReLU())), nn.ReLU()),
        "residual_conv_body": nn.Sequential(nn.Residual(nn.Conv2d(3, 3, 3, padding=1, **kw)),
                                            nn.BatchNorm2d(3, dtype=dtype)),
        "concat": nn.Sequential(
            nn.Concat(nn.Conv2d(3, 4, 1, **kw),
                      nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, **kw), nn.ReLU()),
                      nn.MaxPool2d(3, stride=1, padding=1)),
            nn.ReLU(), nn.Conv2d(13, 4, 3, **kw)),
        "concat_width": nn.Sequential(nn.Concat(nn.Identity(), nn.AvgPool2d(1), dim=3)),
        "pools": nn.Sequential(nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                               nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
                               nn.Conv2d(3, 4, 1, **kw),
                               nn.AvgPool2d(2, ceil_mode=True)),
        "adaptive": nn.Sequential(nn.AdaptiveMaxPool2d((3, 2)), nn.Conv2d(3, 4, 1, **kw),
                                  nn.AdaptiveAvgPool2d((2, None))),
        "python_layers": nn.Sequential(nn.Conv2d(3, 8, 3, **kw), nn.Tanh(), nn.Maxout(2),
                                       nn.LeakyReLU(0.1), nn.Conv2d(4, 4, 1, **kw), nn.ELU(),
                                       nn.Sigmoid(), nn.Flatten(), nn.Dropout(0.5, rng=0),
                                       nn.Softmax(1)),
        "linear_relu_chain": nn.Sequential(
            nn.Flatten(), nn.Linear(3 * 11 * 9, 37, **kw), nn.ReLU(), nn.Linear(37, 5, bias=False, **kw),
            nn.BatchNorm1d(5, dtype=dtype), nn.ReLU(), nn.Linear(5, 70, **kw), nn.ReLU(),
            nn.Dropout(0.2, rng=0), nn.Identity(), nn.Linear(70, 3, **kw), nn.LogSoftmax(1)),
        "flatten_only": nn.Sequential(nn.Flatten(), nn.Identity()),
    }


NET_NAMES = sorted(_conv_nets(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3, 64])
@pytest.mark.parametrize("name", NET_NAMES)
def test_hand_built_nets(name, batch, dtype):
    model = _randomize_bn(_conv_nets(dtype)[name], np.random.default_rng(2))
    model.train()  # compile plans the eval-mode network whatever the model's mode
    _check(model, (batch, 3, 11, 9), dtype, rng=np.random.default_rng(batch))
    assert model.training


@pytest.mark.parametrize("n_threads", [1, 2])
def test_thread_counts_and_row_split(n_threads):
    """At batch 1 with 2 threads the convolutions split their output rows between threads
    (one image): same results as one thread, element for element."""
    model = _randomize_bn(models.resnet8(rng=0), np.random.default_rng(0))
    x = np.random.default_rng(3).standard_normal((1, 1, 28, 28)).astype(np.float32)
    try:
        fastconv.set_num_threads(1)
        y1 = inference.compile(model, x.shape, measure=False)(x)
        fastconv.set_num_threads(n_threads)
        plan = inference.compile(model, x.shape, measure=False)
        y = plan(x)
        if n_threads == 2:
            assert "2 threads" in plan.steps()
    finally:  # unset again (set_num_threads(get_num_threads()) would pin today's default)
        fastconv.set_num_threads(None)
    np.testing.assert_array_equal(y, y1)


# -- folding and fused epilogues ------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 3, 5, 5), (4, 7)])
def test_fold_batch_norm_formula(shape):
    rng = np.random.default_rng(5)
    w, b = rng.standard_normal(shape), rng.standard_normal(shape[0])
    gamma, beta = rng.uniform(0.5, 2, shape[0]), rng.standard_normal(shape[0])
    mean, var, eps = rng.standard_normal(shape[0]), rng.uniform(0.1, 3, shape[0]), 1e-3
    scale = gamma / np.sqrt(var + eps)
    wf, bf = inference.fold_batch_norm(w, b, scale, beta - mean * scale)
    for co in range(shape[0]):
        np.testing.assert_allclose(wf[co], w[co] * gamma[co] / np.sqrt(var[co] + eps), rtol=1e-14)
        np.testing.assert_allclose(bf[co], (b[co] - mean[co]) * gamma[co] / np.sqrt(var[co] + eps)
                                   + beta[co], rtol=1e-12, atol=1e-14)
    assert wf.dtype == bf.dtype == np.float64


def test_folded_conv_matches_numpy_formula():
    """The plan of conv + BN (folded, float64) against NumPy: conv by einsum over windows,
    then (y - mean) / sqrt(var + eps) * gamma + beta."""
    rng = np.random.default_rng(6)
    conv = nn.Conv2d(2, 3, 3, padding=1, rng=0, dtype=np.float64)
    bn = _randomize_bn(nn.Sequential(nn.BatchNorm2d(3, eps=1e-3, dtype=np.float64)), rng)[0]
    x = rng.standard_normal((2, 2, 6, 5))
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))
    y = np.einsum("nchwij,ocij->nohw", win, conv.weight.data) + conv.bias.data[:, None, None]
    c = (slice(None), None, None)
    ref = ((y - bn.running_mean[c]) / np.sqrt(bn.running_var[c] + 1e-3) * bn.weight.data[c]
           + bn.bias.data[c])
    plan = inference.compile(nn.Sequential(conv, bn), x.shape, measure=False)
    assert "+bn" in plan.steps() and "affine" not in plan.steps()
    np.testing.assert_allclose(plan(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 5])
def test_fused_epilogues_equal_unfused(batch, dtype):
    """conv + ReLU, conv + residual + ReLU, linear + ReLU fused into the kernels' epilogue
    give exactly the unfused results (the same sums, then the same add and max)."""
    kw = dict(rng=0, dtype=dtype)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((batch, 4, 9, 10)).astype(dtype)
    conv = nn.Conv2d(4, 4, 3, padding=1, **kw)
    plain = inference.compile(nn.Sequential(conv), x.shape, measure=False)(x)
    fused = inference.compile(nn.Sequential(conv, nn.ReLU()), x.shape, measure=False)
    assert len(fused._plan_for(x.shape).steps) == 1  # one kernel step: ReLU fused
    np.testing.assert_array_equal(fused(x), np.maximum(plain, 0))
    res = inference.compile(nn.Sequential(nn.Residual(conv), nn.ReLU()), x.shape, measure=False)
    assert len(res._plan_for(x.shape).steps) == 1
    np.testing.assert_array_equal(res(x), np.maximum(plain + x, 0))
    lin = nn.Linear(90, 33, **kw)
    flat = x[:, 0].reshape(batch, 90)
    plain = inference.compile(nn.Sequential(lin), flat.shape, measure=False)(flat)
    fused = inference.compile(nn.Sequential(lin, nn.ReLU()), flat.shape, measure=False)
    np.testing.assert_array_equal(fused(flat), np.maximum(plain, 0))
    # and the unfused products against NumPy
    np.testing.assert_allclose(plain, flat @ lin.weight.data.T + lin.bias.data, **tol(dtype))


def test_relu_keeps_nan():
    model = nn.Sequential(nn.Conv2d(1, 2, 1, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=0),
                          nn.ReLU())
    x = np.zeros((1, 1, 2, 2), np.float32)
    x[0, 0, 0, 0] = np.nan
    y = inference.compile(model, x.shape, measure=False)(x)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(_reference(model, x)))


# -- plan behaviour -------------------------------------------------------------------------
def test_new_batch_size_replans_and_caches():
    model = models.lenet5(rng=0)
    plan = inference.compile(model, (2, 1, 28, 28), measure=False)
    rng = np.random.default_rng(8)
    for n in (5, 1, 5, 2):
        x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        np.testing.assert_allclose(plan(x), _reference(model, x), **tol(np.float32))
    assert sorted(k[0][0] for k in plan._plans) == [1, 2, 5]
    assert plan.output_shape == (2, 10)


def test_copy_semantics():
    model = models.lenet5(rng=0)
    rng = np.random.default_rng(9)
    a, b = (rng.standard_normal((2, 1, 28, 28)).astype(np.float32) for _ in range(2))
    plan = inference.compile(model, a.shape, measure=False)
    ya = plan(a)
    ya_saved = ya.copy()
    plan(b)
    np.testing.assert_array_equal(ya, ya_saved)  # default: fresh arrays
    shared = inference.compile(model, a.shape, copy=False, measure=False)
    ra = shared(a)
    rb = shared(b)
    assert ra is rb  # the plan's own buffer, overwritten by the next call
    np.testing.assert_allclose(rb, _reference(model, b), **tol(np.float32))


def test_input_layouts_accepted():
    model = models.lenet5(rng=0)
    plan = inference.compile(model, (3, 1, 28, 28), measure=False)
    x = np.random.default_rng(10).standard_normal((3, 1, 28, 28)).astype(np.float32)
    ref = plan(x)
    np.testing.assert_array_equal(plan(np.asfortranarray(x)), ref)
    big = np.zeros((3, 1, 28, 56), np.float32)
    big[..., ::2] = x
    np.testing.assert_array_equal(plan(big[..., ::2]), ref)
    np.testing.assert_array_equal(plan(x.astype(">f4")), ref)
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(plan(ro), ref)


def test_model_untouched_and_snapshot():
    model = _randomize_bn(models.resnet8(rng=0), np.random.default_rng(11))
    model.train()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    x = np.random.default_rng(12).standard_normal((2, 1, 28, 28)).astype(np.float32)
    plan = inference.compile(model, x.shape, measure=False)
    y = plan(x)
    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        assert after[k].dtype == before[k].dtype
        np.testing.assert_array_equal(after[k], before[k])
    assert [m.training for m in model.modules()] == flags
    # the plan snapshots the weights: a later change reaches it only through refresh()
    model[0].weight.data *= 2
    np.testing.assert_array_equal(plan(x), y)
    plan.refresh()
    np.testing.assert_allclose(plan(x), _reference(model, x), **tol(np.float32))
    assert model.training


def test_repr_lists_steps():
    plan = inference.compile(models.resnet8(rng=0), (1, 1, 28, 28), measure=False)
    text = repr(plan)
    assert text.startswith("CompiledModel(input_shape=(1, 1, 28, 28), dtype=float32")
    assert "+bn +relu" in text and "+residual +relu" in text and "linear 64->10" in text
    assert plan.dtype == np.float32 and plan.input_shape == (1, 1, 28, 28)
    assert "(4, 16, 28, 28)" in plan.steps(batch_size=4)


def test_exported_as_submodule():
    assert fastconv.inference is inference
    assert callable(fastconv.inference.compile)


# -- bad inputs -----------------------------------------------------------------------------
class _Custom(nn.Module):
    def forward(self, x):
        return x


def _lenet_plan():
    return inference.compile(models.lenet5(rng=0), (2, 1, 28, 28), measure=False)


BAD_COMPILE = [
    (lambda: inference.compile("lenet", (1, 1, 28, 28)), TypeError, "model must be"),
    (lambda: inference.compile(models.lenet5(rng=0), 28), TypeError, "input_shape"),
    (lambda: inference.compile(models.lenet5(rng=0), (1,)), TypeError, "input_shape"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 1, 28.0, 28)), TypeError, "input_shape"),
    (lambda: inference.compile(models.lenet5(rng=0), (0, 1, 28, 28)), ValueError, "positive"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 3, 28, 28)), ValueError,
     r"layer 0 \(Conv2d\) expects 1 input channels"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 1, 20, 20)), ValueError,
     r"layer 7 \(Linear\)"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 1, 28, 28), copy=1), TypeError, "copy"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 1, 28, 28), dtype=np.float64), TypeError,
     "does not match"),
    (lambda: inference.compile(models.lenet5(rng=0), (1, 1, 28, 28), dtype=np.int8), TypeError,
     "dtype must be"),
    (lambda: inference.compile(nn.Sequential(nn.Conv2d(1, 2, 1), _Custom()), (1, 1, 4, 4)),
     ValueError, r"layer 1 \(_Custom\) is not supported"),
    (lambda: inference.compile(nn.Sequential(nn.Residual(nn.Conv2d(1, 2, 1))), (1, 1, 4, 4)),
     ValueError, r"layer 0 \(Residual\)"),
    (lambda: inference.compile(nn.Sequential(nn.AdaptiveMaxPool2d(1, return_indices=True)),
                               (1, 1, 4, 4)), ValueError, "return_indices"),
]

BAD_CALL = [
    (lambda p: p([[0.0]]), TypeError, "numpy.ndarray"),
    (lambda p: p(np.zeros((2, 1, 28, 28), np.float64)), TypeError, "dtype float32"),
    (lambda p: p(np.zeros((2, 1, 28, 28), np.int32)), TypeError, "dtype float32"),
    (lambda p: p(np.zeros((2, 1, 28, 27), np.float32)), ValueError, r"shape \(N, 1, 28, 28\)"),
    (lambda p: p(np.zeros((2, 28, 28), np.float32)), ValueError, r"shape \(N, 1, 28, 28\)"),
    (lambda p: p(np.zeros((0, 1, 28, 28), np.float32)), ValueError, "at least one sample"),
    (lambda p: p.steps(batch_size=0), ValueError, "at least one sample"),
]


@pytest.mark.parametrize("call, exc, match", BAD_COMPILE)
def test_bad_compile_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("call, exc, match", BAD_CALL)
def test_bad_call_arguments(call, exc, match):
    plan = _lenet_plan()
    with pytest.raises(exc, match=match):
        call(plan)


def test_plan_is_independent_of_later_deepcopy():
    """A plan keeps working after the model is garbage (it owns a copy)."""
    model = models.lenet5(rng=0)
    x = np.random.default_rng(13).standard_normal((1, 1, 28, 28)).astype(np.float32)
    ref = _reference(model, x)
    plan = inference.compile(copy.deepcopy(model), x.shape, measure=False)
    np.testing.assert_allclose(plan(x), ref, **tol(np.float32))


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("chunk", [1, 2, 3])
@pytest.mark.parametrize("name", ["lenet5", "resnet8", "concat", "adaptive", "bn_without_conv"])
def test_chunked_plan_matches_layer_plan(name, chunk, n_threads):
    """The whole network run chunk by chunk, each chunk on one thread's own buffers, gives
    the layer-by-layer plan's results (the same kernels on the same images)."""
    if name in models.MODELS:
        model, shape = models.MODELS[name](rng=0), (6, 1, 28, 28)
    else:
        model, shape = _conv_nets(np.float32)[name], (6, 3, 11, 9)
    model = _randomize_bn(model, np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    snapshot = copy.deepcopy(model).eval()
    layer = inference._Plan(snapshot, shape, np.dtype(np.float32), n_threads, measure=False)
    chunked = inference._ChunkedPlan(snapshot, shape, np.dtype(np.float32), n_threads, chunk)
    assert inference._ChunkedPlan.fits(layer)
    assert "chunks of" in chunked.describe()
    expected = layer.run(x).copy()
    np.testing.assert_allclose(chunked.run(x), expected, **tol(np.float32))
    np.testing.assert_allclose(expected, _reference(model, x), **tol(np.float32))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("algorithm", ["winograd", "winograd_axpy", "im2col"])
@pytest.mark.parametrize("name", ["resnet8", "bn_after_conv", "residual_identity", "residual_conv_body"])
def test_other_conv_algorithms(name, algorithm, dtype):
    """The convolutions the planner may move to Winograd (a kernel step, epilogue fused) or
    im2col (a Python step, then an epilogue step) give the eval-mode results, in the layer
    plan and (Winograd) in the chunked one."""
    if name in models.MODELS:
        model, shape = models.MODELS[name](rng=0, dtype=dtype), (5, 1, 28, 28)
    else:
        model, shape = _conv_nets(dtype)[name], (5, 3, 11, 9)
    model = _randomize_bn(model, np.random.default_rng(5))
    x = np.random.default_rng(6).standard_normal(shape).astype(dtype)
    snapshot = copy.deepcopy(model).eval()
    dt = np.dtype(dtype)
    plan = inference._Plan(snapshot, shape, dt, 2, measure=False, force_algorithm=algorithm)
    if algorithm != "im2col" or name not in ("residual_identity", "residual_conv_body"):
        # (no 1x1 convolution in those two)
        assert algorithm.split("_")[0] in plan.describe()
    ref = _reference(model, x)
    np.testing.assert_allclose(plan.run(x), ref, **tol(dtype))
    if algorithm != "im2col":
        chunked = inference._ChunkedPlan(snapshot, shape, dt, 2, 1, measure=False,
                                         force_algorithm=algorithm)
        assert "winograd" in chunked.describe()
        np.testing.assert_allclose(chunked.run(x), ref, **tol(dtype))


# -- Graph models ---------------------------------------------------------------------------
def _graph(dtype):
    kw = dict(dtype=dtype)
    return nn.Graph([
        ("conv1", nn.Conv2d(3, 8, 3, padding=1, rng=0, **kw), ["input"]),
        ("bn1", nn.BatchNorm2d(8, **kw), ["conv1"]),  # conv1 is read twice: not folded
        ("relu1", nn.ReLU(), ["bn1"]),
        ("conv2", nn.Conv2d(8, 8, 3, padding=1, rng=1, **kw), ["relu1"]),
        ("bn2", nn.BatchNorm2d(8, **kw), ["conv2"]),  # folded
        ("add", nn.Add(), ["bn2", "relu1"]),  # fused into conv2's epilogue
        ("relu2", nn.ReLU(), ["add"]),
        ("gap", nn.AdaptiveAvgPool2d(1), ["relu2"]),
        ("scale", nn.Add(), ["relu2", "gap"]),  # broadcast: a Python step
        ("cat", nn.Cat(1), ["scale", "conv1"]),
        ("pad", nn.ZeroPad2d(1), ["cat"]),
        ("conv3", nn.Conv2d(16, 4, 3, rng=2, **kw), ["pad"]),
    ])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [1, 3])
def test_graph_model(batch, dtype):
    g = _randomize_bn(_graph(dtype), np.random.default_rng(14))
    plan, _, _ = _check(g, (batch, 3, 9, 9), dtype)
    text = plan.steps()
    assert "bn1: batch_norm (affine) +relu" in text  # conv1 pinned: read by bn1 and cat
    assert "conv2: conv 8->8 3x3 +bn +residual +relu" in text


def test_graph_refused():
    two_in = nn.Graph([("add", nn.Add(), ["a", "b"])], inputs=["a", "b"])
    with pytest.raises(ValueError, match="2 inputs and 1 outputs"):
        inference.compile(two_in, (1, 2, 3, 3))
    split = nn.Graph([("split", nn.Split([1, 1], dim=1), ["input"], ["p", "q"]),
                      ("add", nn.Add(), ["p", "q"])])
    with pytest.raises(ValueError, match=r"layer split \(Split\) has 2 outputs"):
        inference.compile(split, (1, 2, 3, 3))


def test_measured_plan_two_threads():
    """With two threads the measured choices include chunked plans on two threads and on
    one; whichever wins, the results are the eval-mode ones."""
    model = _randomize_bn(models.resnet8(rng=0), np.random.default_rng(15))
    try:
        fastconv.set_num_threads(2)
        for batch in (1, 8):
            plan, _, _ = _check(model, (batch, 1, 28, 28), np.float32, measure=True)
            assert plan.steps()
    finally:  # unset again (set_num_threads(get_num_threads()) would pin today's default)
        fastconv.set_num_threads(None)


@pytest.mark.parametrize("batch", [1, 4])
def test_conv_relu_maxpool_fused(batch):
    """conv (pixel tile) + ReLU + 2x2 max pooling in one kernel, and conv + pooling without
    ReLU; a BatchNorm after the pooling is not folded into the convolution (it does not
    commute with the max), a ReLU after it is fused (it does)."""
    kw = dict(rng=0)
    model = _randomize_bn(nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, **kw), nn.ReLU(), nn.MaxPool2d(2), nn.BatchNorm2d(6),
        nn.Conv2d(6, 4, 3, padding=1, **kw), nn.MaxPool2d(2), nn.ReLU()), np.random.default_rng(16))
    for m in model.modules():  # negative BatchNorm scales: folding through a max would be wrong
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[::2] *= -1
    plan, x, y = _check(model, (batch, 3, 12, 12), np.float32)
    text = plan.steps()
    if fastconv._kernels._direct.use_avx512():
        assert text.count("+maxpool") == 2 and "batch_norm (affine)" in text
    x[0, 1, 3, 4] = np.nan
    np.testing.assert_array_equal(np.isnan(plan(x)), np.isnan(_reference(model, x)))


@pytest.mark.parametrize("name", ["lenet5", "resnet8", "concat", "pools", "linear_relu_chain"])
@pytest.mark.parametrize("batch", [3, 1])
@pytest.mark.parametrize("avx2", [True, False], ids=["avx2", "portable"])
def test_portable_kernels(name, batch, avx2):
    """With the AVX-512 kernels switched off (``_direct.use_avx512(False)``: what CPUs
    without them get) plans use the AVX2 kernels where the CPU has them (tiles, the fully
    connected layers' row blocks, Winograd's products by the blocks of _gemm_avx2.h) or
    else the portable tiles and BLAS, and the portable Winograd transforms, with the same
    results."""
    from fastconv._kernels import _direct

    if avx2 and not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    if name in models.MODELS:
        model, shape = models.MODELS[name](rng=0), (batch, 1, 28, 28)
    else:
        model, shape = _conv_nets(np.float32)[name], (batch, 3, 11, 9)
    model = _randomize_bn(model, np.random.default_rng(17))
    x = np.random.default_rng(18).standard_normal(shape).astype(np.float32)
    ref = _reference(model, x)
    previous = _direct.use_avx512(False), _direct.use_avx2(avx2)
    try:
        snapshot = copy.deepcopy(model).eval()
        for force in (None, "winograd", "winograd_axpy"):  # (axpy: the AVX2 product blocks)
            plan = inference._Plan(snapshot, shape, np.dtype(np.float32), 2, measure=False,
                                   force_algorithm=force)
            d = plan.describe()
            assert "tile 20" not in d  # the AVX-512 pixel tile
            # pooling fused into a convolution only on the AVX2 pixel tile
            assert ("+maxpool" in d) <= (avx2 and f"tile {_direct.AVX2_PIXEL_TILE}" in d)
            assert ("+maxpool" in d) == (avx2 and name == "lenet5"), d
            assert ("tile 6" in plan.describe() or "tile 7" in plan.describe()) == (
                avx2 and "conv" in plan.describe())  # AVX2 tiles from index 64
            if avx2:  # BLAS (and its per-call thread pin) only for Winograd's BLAS products
                assert plan.blas == ("(BLAS products)" in d), d
            np.testing.assert_allclose(plan.run(x), ref, **tol(np.float32))
        np.testing.assert_allclose(inference.compile(model, shape)(x), ref, **tol(np.float32))
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("C_out", [6, 16])
@pytest.mark.parametrize("W", [12, 20, 22, 28])
def test_avx2_pixel_pool_and_max_pool(C_out, W):
    """On the AVX2 kernels: a convolution with up to 8 channels, ReLU and 2x2 max pooling
    fused on the AVX2 pixel tile (6 channels), and the AVX2 2x2 pooling step without
    indices (16 channels: not fused), against the layers' eval forward, with NaN in the
    input (propagated through the max from either side of a comparison) and widths that
    leave partial pixel blocks."""
    from fastconv._kernels import _direct

    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    model = nn.Sequential(nn.Conv2d(2, C_out, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2))
    model.eval()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 10, W)).astype(np.float32)
    x[0, 0, 3, 5] = np.nan
    x[1, 1, 6, W - 2] = np.nan
    ref = model(x)
    assert np.isnan(ref).any() and not np.isnan(ref).all()
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        plan = inference._Plan(copy.deepcopy(model), x.shape, np.dtype(np.float32), 1, measure=False)
        d = plan.describe()
        assert ("+maxpool" in d) == (C_out <= 8), d
        np.testing.assert_allclose(plan.run(x), ref, **tol(np.float32))
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])


@pytest.mark.parametrize("K", [3, 8, 21, 400])
@pytest.mark.parametrize("M", [1, 5, 13])
def test_avx2_linear_blocks(M, K):
    """On the AVX2 kernels the fully connected layers run as blocks of rows of x against
    columns of W (one row by 8 at batch 1, 2 x 6 at batch 2, 4 x 3 above), rows and
    columns past the ends repeated but not written, the K % 8 tail summed after the lanes:
    against the float64 formula, with ReLU fused, and each row the same whatever batch it
    is computed in (every block sums in the one-row kernel's order)."""
    from fastconv._kernels import _direct

    if not _direct.AVX2_AVAILABLE:
        pytest.skip("no AVX2 + FMA on this CPU or build")
    lin = nn.Linear(K, M, rng=0)
    model = nn.Sequential(lin, nn.ReLU())
    model.eval()
    rng = np.random.default_rng(K * 31 + M)
    x = rng.standard_normal((9, K)).astype(np.float32)
    ref = np.maximum(x.astype(np.float64) @ lin.weight.data.T.astype(np.float64)
                     + lin.bias.data.astype(np.float64), 0)
    previous = _direct.use_avx512(False), _direct.use_avx2(True)
    try:
        rows = {}
        for n in (1, 2, 3, 4, 5, 9):
            plan = inference._Plan(copy.deepcopy(model), (n, K), np.dtype(np.float32), 1,
                                   measure=False)
            from fastconv.inference._planning import _FIELD_COLS
            assert plan.steps[0, _FIELD_COLS["linear"]["avx"]] == 2 and not plan.blas
            out = plan.run(np.ascontiguousarray(x[:n])).copy()
            np.testing.assert_allclose(out, ref[:n], rtol=1e-5, atol=1e-5 * np.sqrt(K))
            rows[n] = out
        for n, out in rows.items():
            np.testing.assert_array_equal(out, rows[9][:n])
    finally:
        _direct.use_avx512(previous[0])
        _direct.use_avx2(previous[1])
