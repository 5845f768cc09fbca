"""Batch normalisation: functional and layers against NumPy float64 formulas, central
differences, large-mean accuracy, determinism, layouts, state and errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import nn, optim
from fastconv._kernels import _norm
from fastconv.functional import batch_norm, batch_norm_backward
from reference import (batch_norm_grads_ref, batch_norm_ref, numerical_grad, random_array,
                       tol)

SHAPES = [(6, 3), (5, 4, 7), (3, 4, 5, 6), (2, 3, 1, 1), (1, 2, 3, 4)]


@pytest.fixture(params=["avx512", "portable"] if _norm.AVX512_AVAILABLE else ["portable"])
def simd(request):
    """The float32 loops under test: AVX-512 (where the CPU has it) or portable."""
    previous = _norm.use_avx512(request.param == "avx512")
    yield request.param
    _norm.use_avx512(previous)


def _params(rng, C, dtype=np.float64):
    w = rng.standard_normal(C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm = rng.standard_normal(C).astype(dtype)
    rv = (rng.random(C) + 0.5).astype(dtype)
    return w, b, rm, rv


# -- functional forward ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_reference(shape, training, affine, dtype, simd, rng):
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    w, b, rm, rv = _params(rng, shape[1], dtype)
    if not affine:
        w = b = None
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-3,
                                 return_stats=True)
    want, want_rm, want_rv = batch_norm_ref(x, rm0, rv0, w, b, training, momentum=0.3, eps=1e-3)
    assert y.dtype == dtype and y.shape == shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, want, **tol(dtype))
    axes = (0,) + tuple(range(2, x.ndim))
    x64 = x.astype(np.float64)
    if training:
        np.testing.assert_allclose(rm, want_rm, **tol(dtype))
        np.testing.assert_allclose(rv, want_rv, **tol(dtype))
        np.testing.assert_allclose(mean, x64.mean(axes), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(invstd, 1 / np.sqrt(x64.var(axes) + 1e-3), rtol=1e-12)
    else:  # running statistics are used, not changed
        np.testing.assert_array_equal(rm, rm0)
        np.testing.assert_array_equal(rv, rv0)
        np.testing.assert_array_equal(mean, rm0.astype(np.float64))
        np.testing.assert_allclose(invstd, 1 / np.sqrt(rv0.astype(np.float64) + 1e-3), rtol=1e-12)
    assert mean.dtype == invstd.dtype == np.float64


def test_training_without_running_stats_and_default_return(rng):
    x = rng.standard_normal((4, 3, 5))
    y = batch_norm(x, training=True)
    assert isinstance(y, np.ndarray)
    np.testing.assert_allclose(y, batch_norm_ref(x, training=True)[0], **tol(np.float64))


@pytest.mark.parametrize("momentum", [0.0, 1.0])
def test_momentum_bounds(momentum, rng):
    x = rng.standard_normal((5, 2, 3, 3))
    rm, rv = np.full(2, 7.0), np.full(2, 9.0)
    batch_norm(x, rm, rv, training=True, momentum=momentum)
    if momentum == 0:
        np.testing.assert_array_equal(rm, 7.0)
        np.testing.assert_array_equal(rv, 9.0)
    else:
        np.testing.assert_allclose(rm, x.mean((0, 2, 3)), rtol=1e-12)
        np.testing.assert_allclose(rv, x.var((0, 2, 3), ddof=1), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 5), c=st.integers(1, 5), h=st.integers(1, 6), w=st.integers(1, 6),
       ndim=st.sampled_from([2, 3, 4]), training=st.booleans(), seed=st.integers(0, 2**16))
def test_forward_backward_any_shape(n, c, h, w, ndim, training, seed):
    shape = ((n, c), (n, c, h), (n, c, h, w))[ndim - 2]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 - 1
    if training and x.size // c <= 1:
        with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
            batch_norm(x, training=True)
        return
    wt, b, rm, rv = _params(rng, c)
    y, mean, invstd = batch_norm(x, rm.copy(), rv.copy(), wt, b, training=training,
                                 return_stats=True)
    np.testing.assert_allclose(y, batch_norm_ref(x, rm, rv, wt, b, training)[0], rtol=1e-9, atol=1e-9)
    gy = rng.standard_normal(shape)
    got = batch_norm_backward(gy, x, wt, mean, invstd, training=training)
    want = batch_norm_grads_ref(gy, x, wt, training, rm, rv)
    for g, r, name in zip(got, want, ("grad_input", "grad_weight", "grad_bias")):
        np.testing.assert_allclose(g, r, rtol=1e-8, atol=1e-8, err_msg=name)


# -- functional backward -----------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 5), (3, 2, 3, 4)], ids=str)
def test_backward_matches_central_differences(shape, training, rng):
    x = rng.standard_normal(shape) * 2 + 1
    w, b, rm, rv = _params(rng, shape[1])
    gy = rng.standard_normal(shape)

    def loss():  # running statistics are copied: each evaluation sees the same ones
        return float(np.sum(batch_norm(x, rm.copy(), rv.copy(), w, b, training=training) * gy))

    _, mean, invstd = batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, return_stats=True)
    gi, gw, gb = batch_norm_backward(gy, x, w, mean, invstd, training=training)
    np.testing.assert_allclose(gi, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gw, numerical_grad(loss, w), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, numerical_grad(loss, b), rtol=1e-6, atol=1e-8)
    # the float64 formula reference agrees with the differences too
    want = batch_norm_grads_ref(gy, x, w, training, rm, rv)
    for g, r in zip((gi, gw, gb), want):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_training_gradient_sums_to_zero_per_channel(rng):
    # through the batch statistics the output is shift-invariant per channel, so the
    # input gradient of every channel sums to zero (unlike the affine eval gradient)
    x = rng.standard_normal((8, 3, 4, 4))
    gy = rng.standard_normal(x.shape)
    _, mean, invstd = batch_norm(x, training=True, return_stats=True)
    gi, _, _ = batch_norm_backward(gy, x, None, mean, invstd, training=True)
    np.testing.assert_allclose(gi.sum((0, 2, 3)), 0, atol=1e-12)
    gi_eval, _, _ = batch_norm_backward(gy, x, None, mean, invstd, training=False)
    np.testing.assert_allclose(gi_eval, gy * invstd[None, :, None, None], rtol=1e-14)


@pytest.mark.parametrize("needs", [(True, False), (False, True), (False, False)])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_backward_partial_requests(needs, training, rng):
    x = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    w, _, rm, rv = _params(rng, 4, np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    _, mean, invstd = batch_norm(x, rm, rv, w, training=training, return_stats=True)
    full = batch_norm_backward(gy, x, w, mean, invstd, training=training)
    got = batch_norm_backward(gy, x, w, mean, invstd, training=training,
                              needs_input_grad=needs[0], needs_weight_grad=needs[1])
    if needs[0]:
        np.testing.assert_array_equal(got[0], full[0])
    else:
        assert got[0] is None
    if needs[1]:
        np.testing.assert_array_equal(got[1], full[1])
        np.testing.assert_array_equal(got[2], full[2])
        assert got[1].dtype == got[2].dtype == np.float32
    else:
        assert got[1] is None and got[2] is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(32, 6, 9, 9), (300, 40), (16, 5, 50), (64, 1, 32, 32), (8, 3, 7, 7),
                                   (4, 2, 33, 2)], ids=str)
def test_float32_matches_float64_reference(shape, training, simd, rng):
    x = (rng.standard_normal(shape) * 1.5 + 0.5).astype(np.float32)
    w, b, rm, rv = _params(rng, shape[1], np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    y, mean, invstd = batch_norm(x, rm.copy(), rv.copy(), w, b, training=training, return_stats=True)
    np.testing.assert_allclose(y, batch_norm_ref(x, rm, rv, w, b, training)[0], **tol(np.float32))
    got = batch_norm_backward(gy, x, w, mean, invstd, training=training)
    for g, r in zip(got, batch_norm_grads_ref(gy, x, w, training, rm, rv)):
        scale = max(1.0, np.abs(r).max())
        np.testing.assert_allclose(g / scale, r / scale, **tol(np.float32))


@pytest.mark.parametrize("S", [2, 15, 16, 17, 31, 32, 33, 48, 49, 64, 65, 100])
def test_float32_run_lengths_around_vector_widths(S, simd, rng):
    # runs of S contiguous values per (image, channel): whole vectors, masked tails
    x = (rng.standard_normal((5, 3, S)) * 2 + 3).astype(np.float32)
    w, b, rm, rv = _params(rng, 3, np.float32)
    gy = rng.standard_normal(x.shape).astype(np.float32)
    for training in (True, False):
        y, mean, invstd = batch_norm(x, rm.copy(), rv.copy(), w, b, training=training,
                                     return_stats=True)
        np.testing.assert_allclose(y, batch_norm_ref(x, rm, rv, w, b, training)[0], **tol(np.float32))
        got = batch_norm_backward(gy, x, w, mean, invstd, training=training)
        for g, r in zip(got, batch_norm_grads_ref(gy, x, w, training, rm, rv)):
            np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4)


def test_large_mean_float32_is_accumulated_in_float64(simd, rng):
    # x = 1000 + N(0, 1): float32 holds x to ~6e-5, and a float32 sum of squares of such
    # values loses the variance entirely; float64 shifted sums keep it.
    shape = (64, 4, 16, 16)
    x = (1000 + rng.standard_normal(shape)).astype(np.float32)
    x64 = x.astype(np.float64)
    axes = (0, 2, 3)
    y, mean, invstd = batch_norm(x, training=True, return_stats=True)
    np.testing.assert_allclose(mean, x64.mean(axes), rtol=1e-13)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(x64.var(axes) + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(y, batch_norm_ref(x, training=True)[0], rtol=0, atol=5e-6)
    # what float32 accumulation (E[x^2] - E[x]^2) would give: off by far more
    x32 = x.reshape(64, 4, -1).transpose(1, 0, 2).reshape(4, -1)
    naive_var = (x32 * x32).mean(1, dtype=np.float32) - x32.mean(1, dtype=np.float32) ** 2
    assert np.abs(naive_var - x64.var(axes)).max() > 1e-2
    gy = rng.standard_normal(shape).astype(np.float32)
    gi, gw, gb = batch_norm_backward(gy, x, None, mean, invstd, training=True)
    rgi, rgw, rgb = batch_norm_grads_ref(gy, x, None, True)
    np.testing.assert_allclose(gi, rgi, rtol=0, atol=2e-6)
    np.testing.assert_allclose(gw, rgw, rtol=1e-5, atol=1e-2)
    np.testing.assert_allclose(gb, rgb, rtol=1e-5, atol=1e-2)
    # running statistics: the float64 batch values, rounded once
    rm, rv = np.zeros(4, np.float32), np.ones(4, np.float32)
    batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rm, x64.mean(axes), rtol=1e-7)
    np.testing.assert_allclose(rv, x64.var(axes, ddof=1), rtol=1e-6)


def test_nan_stays_in_its_channel(rng):
    x = rng.standard_normal((4, 3, 5, 5))
    x[1, 1, 2, 2] = np.nan
    y = batch_norm(x, training=True)
    assert np.isnan(y[:, 1]).all()
    assert np.isfinite(y[:, [0, 2]]).all()


def test_empty_batch_in_eval_mode(rng):
    w, b, rm, rv = _params(rng, 3)
    y = batch_norm(np.zeros((0, 3, 4, 4)), rm, rv, w, b)
    assert y.shape == (0, 3, 4, 4)
    gi, gw, gb = batch_norm_backward(np.zeros((0, 3, 4, 4)), np.zeros((0, 3, 4, 4)), w,
                                     rm, 1 / np.sqrt(rv), training=False)
    assert gi.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(gw, 0)
    np.testing.assert_array_equal(gb, 0)


# -- threads, determinism, layouts -------------------------------------------------------

# above the one-thread threshold: one channel per task; few channels (chunked rows);
# (N, C) with channel blocks; (N, C) with one block split in chunks
PARALLEL_SHAPES = [(64, 16, 12, 12), (64, 1, 32, 32), (3, 3, 100, 100), (2048, 40), (4096, 16)]


def _run_all(x, gy, training):
    C = x.shape[1]
    rng = np.random.default_rng(1)
    w, b, rm, rv = _params(rng, C, x.dtype)
    y, mean, invstd = batch_norm(x, rm, rv, w, b, training=training, return_stats=True)
    grads = batch_norm_backward(gy, x, w, mean, invstd, training=training)
    return (y, mean, invstd, rm, rv) + grads


@pytest.mark.parametrize("shape", PARALLEL_SHAPES, ids=str)
def test_same_bits_every_run(shape, simd, rng):
    x = (rng.standard_normal(shape) + 2).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    fastconv.set_num_threads(2)
    try:
        first = _run_all(x, gy, True)
        for _ in range(3):
            for a, b in zip(first, _run_all(x, gy, True)):
                np.testing.assert_array_equal(a, b)
    finally:
        fastconv.set_num_threads(None)


@pytest.mark.parametrize("threads", [2, 3], indirect=True)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", PARALLEL_SHAPES, ids=str)
def test_thread_counts_agree(shape, training, threads, simd, rng):
    x = (rng.standard_normal(shape) * 2 + 5).astype(np.float32)
    gy = rng.standard_normal(shape).astype(np.float32)
    many = _run_all(x, gy, training)
    fastconv.set_num_threads(1)
    one = _run_all(x, gy, training)
    fastconv.set_num_threads(threads)
    for a, b in zip(many, one):
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("layout", ["F", "strided", "readonly", "swapped"])
def test_input_layouts(layout, rng):
    shape = (6, 3, 5, 4)
    x = random_array(rng, shape, np.float32, "strided" if layout == "strided" else "C")
    gy = random_array(rng, shape, np.float32, "F" if layout == "F" else "C")
    if layout == "F":
        x = np.asfortranarray(x)
    w, b, rm, rv = _params(rng, 3, np.float32)
    want = _run_all(np.ascontiguousarray(x), np.ascontiguousarray(gy), True)
    if layout == "readonly":
        x.flags.writeable = False
        gy.flags.writeable = False
    if layout == "swapped":
        x = x.astype(x.dtype.newbyteorder(">"))
    got = _run_all(x, gy, True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_running_stats_in_place_for_any_layout(rng):
    x = rng.standard_normal((5, 3, 4))
    rm_big, rv_big = np.zeros(6), np.ones(6)
    rm, rv = rm_big[::2], rv_big[::2]  # strided views: updated through a copy, written back
    batch_norm(x, rm, rv, training=True, momentum=0.5)
    _, want_rm, want_rv = batch_norm_ref(x, np.zeros(3), np.ones(3), training=True, momentum=0.5)
    np.testing.assert_allclose(rm_big[::2], want_rm, rtol=1e-12)
    np.testing.assert_allclose(rv_big[::2], want_rv, rtol=1e-12)
    np.testing.assert_array_equal(rm_big[1::2], 0)
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    y = batch_norm(x, frozen, np.ones(3))  # evaluation only reads them
    np.testing.assert_allclose(y, x / np.sqrt(1 + 1e-5), rtol=1e-12)


# -- layers ------------------------------------------------------------------------------

def _layer_check(layer, x, rng, rtol=1e-6, atol=1e-8):
    """layer.backward and parameter gradients vs central differences of <layer(x), g>."""
    layer.zero_grad()
    y = layer(x)
    g = rng.standard_normal(y.shape)
    gx = layer.backward(g)

    def loss():
        return float(np.sum(layer(x) * g))

    np.testing.assert_allclose(gx, numerical_grad(loss, x), rtol=rtol, atol=atol)
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, numerical_grad(loss, p.data), rtol=rtol, atol=atol,
                                   err_msg=name)


LAYERS = [
    ("bn2d", lambda: nn.BatchNorm2d(3, dtype=np.float64), (4, 3, 3, 2)),
    ("bn1d_2d", lambda: nn.BatchNorm1d(4, momentum=None, dtype=np.float64), (5, 4)),
    ("bn1d_3d", lambda: nn.BatchNorm1d(2, eps=0.1, dtype=np.float64), (3, 2, 5)),
    ("bn2d_plain", lambda: nn.BatchNorm2d(2, affine=False, dtype=np.float64), (3, 2, 2, 3)),
    ("bn2d_untracked", lambda: nn.BatchNorm2d(2, track_running_stats=False, dtype=np.float64),
     (3, 2, 2, 2)),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("make,shape", [(m, s) for _, m, s in LAYERS], ids=[n for n, _, _ in LAYERS])
def test_layer_gradients(make, shape, training, rng):
    layer = make()
    if layer.affine:
        layer.weight.data[...] = rng.standard_normal(layer.num_features)
        layer.bias.data[...] = rng.standard_normal(layer.num_features)
    if layer.track_running_stats:
        layer.running_mean[...] = rng.standard_normal(layer.num_features)
        layer.running_var[...] = rng.random(layer.num_features) + 0.5
    layer.train(training)
    _layer_check(layer, rng.standard_normal(shape) * 2 + 1, rng)


def test_layer_running_statistics_over_steps(rng):
    bn = nn.BatchNorm2d(3, momentum=0.2, dtype=np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(4):
        x = rng.standard_normal((5, 3, 4, 4)) * (step + 1) + step
        y = bn(x)
        want, rm, rv = batch_norm_ref(x, rm, rv, training=True, momentum=0.2)
        np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)
        np.testing.assert_allclose(bn.running_var, rv, rtol=1e-12)
    assert bn.num_batches_tracked.dtype == np.int64 and int(bn.num_batches_tracked) == 4
    bn.eval()
    x = rng.standard_normal((2, 3, 4, 4))
    np.testing.assert_allclose(bn(x), batch_norm_ref(x, rm, rv)[0], rtol=1e-12)
    assert int(bn.num_batches_tracked) == 4  # evaluation leaves the statistics alone
    np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-12)


def test_momentum_none_is_cumulative_average(rng):
    bn = nn.BatchNorm1d(4, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((6, 4, 3)) * (k + 1) - k for k in range(5)]
    for x in batches:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean((0, 2)) for x in batches], 0),
                               rtol=1e-12)
    np.testing.assert_allclose(bn.running_var,
                               np.mean([x.var((0, 2), ddof=1) for x in batches], 0), rtol=1e-12)
    assert int(bn.num_batches_tracked) == 5


def test_untracked_uses_batch_statistics_in_eval(rng):
    bn = nn.BatchNorm2d(3, track_running_stats=False, dtype=np.float64)
    assert bn.running_mean is None and bn.running_var is None and bn.num_batches_tracked is None
    assert list(bn.state_dict()) == ["weight", "bias"]
    x = rng.standard_normal((4, 3, 2, 5))
    y_train = bn(x)
    bn.eval()
    np.testing.assert_array_equal(bn(x), y_train)
    np.testing.assert_allclose(y_train, batch_norm_ref(x, training=True)[0], rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(x.shape)
    gi = bn.backward(g)  # through the batch statistics, as in training
    np.testing.assert_allclose(gi, batch_norm_grads_ref(g, x, None, True)[0], rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        bn(x[:1, :, :1, :1])


def test_affine_false_has_no_parameters(rng):
    bn = nn.BatchNorm1d(3, affine=False, dtype=np.float64)
    assert bn.parameters() == [] and bn.weight is None and bn.bias is None
    assert list(bn.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    x = rng.standard_normal((7, 3))
    np.testing.assert_allclose(bn(x), batch_norm_ref(x, training=True)[0], rtol=1e-10, atol=1e-12)
    assert bn.backward(np.ones_like(x)).shape == x.shape


def test_state_dict_keys_and_round_trip(rng):
    model = nn.Sequential(nn.Conv2d(2, 3, 3, rng=0), nn.BatchNorm2d(3), nn.ReLU())
    for _ in range(3):
        model(rng.standard_normal((4, 2, 6, 6)).astype(np.float32))
    keys = list(model.state_dict())
    assert keys == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                    "1.running_var", "1.num_batches_tracked"]
    assert list(nn.BatchNorm2d(2).state_dict()) == ["weight", "bias", "running_mean",
                                                      "running_var", "num_batches_tracked"]
    state = model.state_dict()
    assert state["1.num_batches_tracked"].dtype == np.int64 and int(state["1.num_batches_tracked"]) == 3
    other = nn.Sequential(nn.Conv2d(2, 3, 3, rng=5), nn.BatchNorm2d(3), nn.ReLU())
    other.load_state_dict(state)
    for k, v in other.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    model.eval()
    other.eval()
    np.testing.assert_array_equal(other(x), model(x))
    bad = dict(state)
    bad["1.running_var"] = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="running_var"):
        other.load_state_dict(bad)


def test_optimizer_never_sees_buffers(rng):
    bn = nn.BatchNorm2d(3)
    opt = optim.SGD(bn.parameters(), lr=0.1, momentum=0.9)
    assert len(bn.parameters()) == 2
    x = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bn(x)
    bn.backward(rng.standard_normal(x.shape).astype(np.float32))
    rm, rv, count = bn.running_mean.copy(), bn.running_var.copy(), bn.num_batches_tracked.copy()
    w_before = bn.weight.data.copy()
    opt.step()
    np.testing.assert_array_equal(bn.running_mean, rm)
    np.testing.assert_array_equal(bn.running_var, rv)
    np.testing.assert_array_equal(bn.num_batches_tracked, count)
    assert not np.array_equal(bn.weight.data, w_before)


def test_frozen_layer_accumulates_no_weight_gradients(rng):
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    bn.requires_grad_(False)
    bn.weight.grad[...] = 7.0
    x = rng.standard_normal((4, 3, 3, 3))
    bn(x)
    g = rng.standard_normal(x.shape)
    gi = bn.backward(g)
    np.testing.assert_array_equal(bn.weight.grad, 7.0)
    np.testing.assert_array_equal(bn.bias.grad, 0.0)
    np.testing.assert_allclose(gi, batch_norm_grads_ref(g, x, bn.weight.data, True)[0], rtol=1e-10, atol=1e-12)
    # only the bias trainable
    bn.bias.requires_grad = True
    bn(x)
    bn.backward(g)
    np.testing.assert_array_equal(bn.weight.grad, 7.0)
    np.testing.assert_allclose(bn.bias.grad, g.sum((0, 2, 3)), rtol=1e-12)


def test_input_gradient_skipped_when_not_needed(rng):
    bn = nn.BatchNorm2d(3, dtype=np.float64)
    bn.needs_input_grad = False
    x = rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal(x.shape)
    bn(x)
    assert bn.backward(g) is None
    _, gw, gb = batch_norm_grads_ref(g, x, None, True)
    np.testing.assert_allclose(bn.weight.grad, gw, rtol=1e-10)
    np.testing.assert_allclose(bn.bias.grad, gb, rtol=1e-10)
    # first in a model that needs no input gradient: nothing trainable upstream
    model = nn.Sequential(nn.BatchNorm2d(3, dtype=np.float64), nn.Conv2d(3, 2, 1, rng=0, dtype=np.float64))
    model.needs_input_grad = False
    model(x)
    assert model.backward(rng.standard_normal((4, 2, 3, 3))) is None
    assert np.abs(model[0].weight.grad).sum() > 0


def test_layer_input_layouts_and_workspace(rng):
    bn = nn.BatchNorm2d(3)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    y1 = bn(np.asfortranarray(x)).copy()
    bn2 = nn.BatchNorm2d(3)
    xr = x.copy()
    xr.flags.writeable = False
    np.testing.assert_array_equal(bn2(xr), y1)
    out = bn2(x)
    out_again = bn2(x)  # the caller still holds `out`: a new array
    assert out is not out_again
    np.testing.assert_array_equal(out, out_again)


def test_layer_dtype_conversion(rng):
    bn = nn.BatchNorm1d(3).double()
    assert bn.weight.dtype == bn.running_mean.dtype == bn.running_var.dtype == np.float64
    assert bn.num_batches_tracked.dtype == np.int64
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(bn(x), batch_norm_ref(x, training=True)[0], rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError, match="float32 but the layer's weight is float64"):
        bn(x.astype(np.float32))
    plain = nn.BatchNorm1d(3, affine=False)
    with pytest.raises(TypeError, match="running_mean is float32"):
        plain(x)


def test_repr_and_reset():
    bn = nn.BatchNorm2d(16)
    assert repr(bn) == "BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(nn.BatchNorm1d(4, eps=1e-3, momentum=None, affine=False, track_running_stats=False)) == \
        "BatchNorm1d(4, eps=0.001, momentum=None, affine=False, track_running_stats=False)"
    bn.running_mean[...] = 3
    bn.num_batches_tracked[...] = 5
    bn.weight.data[...] = 2
    bn.reset_parameters()
    np.testing.assert_array_equal(bn.running_mean, 0)
    np.testing.assert_array_equal(bn.running_var, 1)
    np.testing.assert_array_equal(bn.weight.data, 1)
    assert int(bn.num_batches_tracked) == 0


# -- optional PyTorch cross-check --------------------------------------------------------

def test_matches_torch_batchnorm2d(rng):
    torch = pytest.importorskip("torch")
    tbn = torch.nn.BatchNorm2d(5).double()
    fbn = nn.BatchNorm2d(5, dtype=np.float64)
    w, b = rng.standard_normal(5), rng.standard_normal(5)
    with torch.no_grad():
        tbn.weight.copy_(torch.from_numpy(w))
        tbn.bias.copy_(torch.from_numpy(b))
    fbn.weight.data[...] = w
    fbn.bias.data[...] = b
    for mode in ("train", "train", "train", "eval"):
        tbn.train(mode == "train")
        fbn.train(mode == "train")
        x = rng.standard_normal((6, 5, 4, 3)) * 2 + 1
        g = rng.standard_normal(x.shape)
        tx = torch.from_numpy(x).requires_grad_(True)
        ty = tbn(tx)
        ty.backward(torch.from_numpy(g))
        fbn.zero_grad()
        y = fbn(x)
        gi = fbn.backward(g)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gi, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fbn.weight.grad, tbn.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(fbn.bias.grad, tbn.bias.grad.numpy(), rtol=1e-9, atol=1e-12)
        tbn.weight.grad = tbn.bias.grad = None
        np.testing.assert_allclose(fbn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(fbn.running_var, tbn.running_var.numpy(), rtol=1e-12)
        assert int(fbn.num_batches_tracked) == int(tbn.num_batches_tracked)


# -- bad input ---------------------------------------------------------------------------

x4 = np.zeros((2, 3, 4, 4), np.float32)
c3 = np.zeros(3, np.float32)
one3 = np.ones(3, np.float32)
ro = np.zeros(3, np.float32)
ro.flags.writeable = False

BAD = [
    (lambda: batch_norm([[1.0]], training=True), TypeError, "x must be a numpy.ndarray"),
    (lambda: batch_norm(x4[0, 0, 0], training=True), ValueError, "x must be 2-D, 3-D or 4-D"),
    (lambda: batch_norm(x4[None], training=True), ValueError, "x must be 2-D, 3-D or 4-D"),
    (lambda: batch_norm(x4.astype(int), training=True), TypeError, "x must have dtype float32 or float64"),
    (lambda: batch_norm(x4, training=1), TypeError, "training must be a bool"),
    (lambda: batch_norm(x4, training=True, return_stats="yes"), TypeError, "return_stats must be a bool"),
    (lambda: batch_norm(x4, c3, one3, eps=0.0), ValueError, "eps must be positive"),
    (lambda: batch_norm(x4, c3, one3, eps=-1e-5), ValueError, "eps must be positive"),
    (lambda: batch_norm(x4, c3, one3, eps="1e-5"), TypeError, "eps must be a real number"),
    (lambda: batch_norm(x4, c3, one3, eps=float("nan")), ValueError, "eps must be finite"),
    (lambda: batch_norm(x4, c3, one3, momentum=1.5), ValueError, "momentum must be in [0, 1]"),
    (lambda: batch_norm(x4, c3, one3, momentum=-0.1), ValueError, "momentum must be in [0, 1]"),
    (lambda: batch_norm(x4, c3, one3, momentum=None), TypeError, "momentum must be a real number"),
    (lambda: batch_norm(x4, c3, one3, momentum=True), TypeError, "momentum must be a real number"),
    (lambda: batch_norm(x4), ValueError, "running_mean and running_var are required when training=False"),
    (lambda: batch_norm(x4, c3, training=True), ValueError, "must both be given or both be None"),
    (lambda: batch_norm(x4, np.zeros(4, np.float32), one3), ValueError, "running_mean must have shape (3,)"),
    (lambda: batch_norm(x4, c3, np.ones((3, 1), np.float32)), ValueError, "running_var must have shape (3,)"),
    (lambda: batch_norm(x4, c3.astype(np.float64), one3), TypeError, "running_mean: float64"),
    (lambda: batch_norm(x4, [0, 0, 0], one3), TypeError, "running_mean must be a numpy.ndarray"),
    (lambda: batch_norm(x4, c3.astype(int), one3), TypeError, "running_mean must have dtype"),
    (lambda: batch_norm(x4, ro, one3, training=True), ValueError, "running_mean must be writeable"),
    (lambda: batch_norm(x4, c3, one3, weight=np.ones(2, np.float32)), ValueError, "weight must have shape (3,)"),
    (lambda: batch_norm(x4, c3, one3, bias=np.ones(3)), TypeError, "bias: float64"),
    (lambda: batch_norm(x4[:1, :, :1, :1], training=True), ValueError,
     "Expected more than 1 value per channel when training"),
    (lambda: batch_norm(np.zeros((1, 3), np.float32), training=True), ValueError,
     "Expected more than 1 value per channel when training"),
    (lambda: batch_norm_backward(x4, x4[0, 0, 0], None, c3, one3), ValueError, "x must be 2-D, 3-D or 4-D"),
    (lambda: batch_norm_backward(x4[:1], x4, None, c3, one3), ValueError, "grad_output must have the shape of x"),
    (lambda: batch_norm_backward(x4.astype(np.float64), x4, None, c3, one3), TypeError, "grad_output: float64"),
    (lambda: batch_norm_backward(None, x4, None, c3, one3), TypeError, "grad_output must be a numpy.ndarray"),
    (lambda: batch_norm_backward(x4, x4, np.ones(4, np.float32), c3, one3), ValueError, "weight must have shape (3,)"),
    (lambda: batch_norm_backward(x4, x4, None, np.zeros(4), one3), ValueError, "save_mean must have shape (3,)"),
    (lambda: batch_norm_backward(x4, x4, None, c3, np.ones(3, int)), TypeError, "save_invstd must be a float array"),
    (lambda: batch_norm_backward(x4, x4, None, None, one3), TypeError, "save_mean must be a numpy.ndarray"),
    (lambda: batch_norm_backward(x4, x4, None, c3, one3, training="yes"), TypeError, "training must be a bool"),
    (lambda: batch_norm_backward(x4, x4, None, c3, one3, needs_input_grad=0), TypeError, "needs_input_grad"),
    (lambda: batch_norm_backward(x4, x4, None, c3, one3, needs_weight_grad=None), TypeError, "needs_weight_grad"),
    # layers
    (lambda: nn.BatchNorm2d(0), ValueError, "num_features must be positive"),
    (lambda: nn.BatchNorm2d(3.0), TypeError, "num_features must be an int"),
    (lambda: nn.BatchNorm2d(3, eps=0), ValueError, "eps must be positive"),
    (lambda: nn.BatchNorm2d(3, momentum=2), ValueError, "momentum must be in [0, 1]"),
    (lambda: nn.BatchNorm2d(3, momentum="0.1"), TypeError, "momentum must be a real number"),
    (lambda: nn.BatchNorm2d(3, affine=1), TypeError, "affine must be a bool"),
    (lambda: nn.BatchNorm2d(3, track_running_stats=None), TypeError, "track_running_stats must be a bool"),
    (lambda: nn.BatchNorm2d(3, dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (lambda: nn.BatchNorm2d(3)(x4[0]), ValueError, "x must be 4-D with shape (N, C, H, W)"),
    (lambda: nn.BatchNorm1d(3)(x4), ValueError, "x must be 2-D or 3-D"),
    (lambda: nn.BatchNorm2d(4)(x4), ValueError, "expects x with 4 channels"),
    (lambda: nn.BatchNorm2d(3)(x4.astype(np.float64)), TypeError, "x has dtype float64 but the layer's weight is float32"),
    (lambda: nn.BatchNorm2d(3)(x4[:1, :, :1, :1]), ValueError, "Expected more than 1 value per channel"),
    (lambda: nn.BatchNorm1d(3)(np.zeros((1, 3), np.float32)), ValueError, "Expected more than 1 value per channel"),
    (lambda: nn.BatchNorm2d(3).backward(x4), RuntimeError, "backward called before forward"),
]


@pytest.mark.parametrize("call,exc,words", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input_raises_clear_error(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_layer_call_errors(rng):
    bn = nn.BatchNorm2d(3)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    bn(x)
    with pytest.raises(ValueError, match="grad_output must have shape"):
        bn.backward(np.zeros((2, 3, 4, 5), np.float32))
    bn(x)
    with pytest.raises(ValueError, match="dtype float32"):
        bn.backward(np.zeros((2, 3, 4, 4)))
    bn(x)
    bn.backward(np.zeros_like(x))
    with pytest.raises(RuntimeError, match="one backward"):
        bn.backward(np.zeros_like(x))
    bn.running_mean = np.zeros(3)  # a replaced buffer of the wrong dtype
    with pytest.raises(TypeError, match="running_mean is float64"):
        bn(x)
    bn.running_mean = np.zeros(6, np.float32)[::2]
    with pytest.raises(ValueError, match="running_mean must be a writeable C-contiguous array"):
        bn(x)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    bn.running_mean = frozen  # read-only: fine for evaluation, not for training
    with pytest.raises(ValueError, match="running_mean must be a writeable C-contiguous array"):
        bn(x)
    bn.eval()
    np.testing.assert_allclose(bn(x), batch_norm_ref(x, frozen, bn.running_var)[0], **tol(np.float32))
