"""fastconv.nn.init against PyTorch's formulas: gains, fans, and the empirical bounds and
standard deviations of large seeded draws."""
import math
import warnings

import numpy as np
import pytest

import fastconv
from fastconv import nn
from fastconv.nn import init

# the formulas, written out independently of init's table
GAINS = {
    "linear": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0, "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0, "conv_transpose3d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
    "relu": math.sqrt(2.0), "leaky_relu": math.sqrt(2.0 / (1 + 0.01**2)), "selu": 0.75,
}

SHAPE = (192, 96, 3, 5)  # 276,480 values: fan_in 96*15 = 1440, fan_out 192*15 = 2880
FAN_IN, FAN_OUT = 96 * 15, 192 * 15


@pytest.mark.parametrize("name", sorted(GAINS))
def test_calculate_gain(name):
    assert init.calculate_gain(name) == pytest.approx(GAINS[name], rel=1e-15)


@pytest.mark.parametrize("slope", [0, 0.2, 1, -0.5, 3])
def test_leaky_relu_gain(slope):
    assert init.calculate_gain("leaky_relu", slope) == pytest.approx(math.sqrt(2 / (1 + slope**2)), rel=1e-15)


@pytest.mark.parametrize("shape,fans", [
    ((7, 3), (3, 7)), ((8, 4, 3, 3), (36, 72)), ((5, 2, 4), (8, 20)), ((2, 3, 1, 2, 2), (12, 8)),
])
def test_fans(shape, fans):
    assert init._calculate_fan_in_and_fan_out(np.zeros(shape)) == fans
    assert init._calculate_fan_in_and_fan_out(nn.Parameter(np.zeros(shape))) == fans


def _bounded_uniform(values, bound):
    """Uniform on [-bound, bound]: inside it, reaching its ends, std bound/sqrt(3)."""
    assert np.abs(values).max() <= bound * (1 + 1e-6)
    assert np.abs(values).max() > 0.999 * bound
    n = values.size
    assert abs(values.mean()) < 5 * bound / math.sqrt(3 * n)
    np.testing.assert_allclose(values.std(), bound / math.sqrt(3), rtol=0.01)


def _normal(values, std):
    n = values.size
    assert abs(values.mean()) < 5 * std / math.sqrt(n)
    np.testing.assert_allclose(values.std(), std, rtol=0.01)
    # a normal's share within one std is 68.27%
    assert abs(np.mean(np.abs(values) < std) - 0.6827) < 0.005


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode,fan", [("fan_in", FAN_IN), ("fan_out", FAN_OUT)])
@pytest.mark.parametrize("nonlinearity,a,gain", [
    ("leaky_relu", 0, math.sqrt(2.0)),  # a = 0: torch's default is sqrt(2), not slope 0.01
    ("leaky_relu", 0.2, math.sqrt(2 / 1.04)),
    ("relu", 0, math.sqrt(2.0)),
    ("tanh", 0, 5 / 3),
    ("linear", 0, 1.0),
])
def test_kaiming(dtype, mode, fan, nonlinearity, a, gain):
    p = nn.Parameter(np.zeros(SHAPE, dtype))
    data = p.data
    assert init.kaiming_uniform_(p, a=a, mode=mode, nonlinearity=nonlinearity, rng=0) is p
    assert p.data is data and p.data.dtype == dtype  # in place
    _bounded_uniform(p.data, gain * math.sqrt(3.0 / fan))
    w = np.zeros(SHAPE, dtype)
    assert init.kaiming_normal_(w, a, mode, nonlinearity, rng=1) is w
    _normal(w, gain / math.sqrt(fan))


@pytest.mark.parametrize("gain", [1.0, 0.5, 5 / 3])
def test_xavier(gain):
    w = np.zeros(SHAPE, np.float32)
    assert init.xavier_uniform_(w, gain, rng=0) is w
    _bounded_uniform(w, gain * math.sqrt(6.0 / (FAN_IN + FAN_OUT)))
    p = nn.Parameter(np.zeros((600, 500)))
    assert init.xavier_normal_(p, gain=gain, rng=np.random.default_rng(3)) is p
    _normal(p.data, gain * math.sqrt(2.0 / 1100))


def test_seeding_and_global_generator():
    a, b = np.zeros((4, 3)), np.zeros((4, 3))
    init.kaiming_uniform_(a, rng=7)
    init.kaiming_uniform_(b, rng=7)
    np.testing.assert_array_equal(a, b)
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 3)
    np.testing.assert_allclose(a, np.random.default_rng(7).uniform(-bound, bound, (4, 3)), rtol=1e-15)
    fastconv.manual_seed(11)
    init.xavier_normal_(a)
    fastconv.manual_seed(11)
    init.xavier_normal_(b)
    np.testing.assert_array_equal(a, b)
    assert a.std() > 0


def test_constants():
    p = nn.Parameter(np.full((3, 2), 5.0, np.float32))
    assert init.zeros_(p) is p and not p.data.any() and p.data.dtype == np.float32
    assert init.ones_(p) is p and (p.data == 1).all()
    w = np.zeros(4)
    assert init.constant_(w, -2.5) is w and (w == -2.5).all()
    init.constant_(w, np.float32(3))
    assert (w == 3).all()
    one_d = np.zeros(5)  # constants need no fan
    init.ones_(one_d)
    assert (one_d == 1).all()
    strided = np.zeros((4, 6))[:, ::2]
    init.kaiming_normal_(strided, rng=0)
    assert strided.std() > 0


def test_zero_element_tensors():
    w = np.zeros((0, 3, 3, 3))
    with pytest.warns(UserWarning, match="zero-element"):
        assert init.kaiming_uniform_(w) is w
    with pytest.warns(UserWarning, match="zero-element"):
        init.kaiming_normal_(np.zeros((4, 0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        init.xavier_uniform_(np.zeros((0, 0)))
        init.xavier_normal_(np.zeros((3, 0, 2)))


def test_layers_accept_reinitialisation():
    layer = nn.Conv2d(3, 8, 3, rng=0)
    init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", rng=0)
    init.zeros_(layer.bias)
    x = np.ones((1, 3, 5, 5), np.float32)
    y = layer(x)
    assert y.shape == (1, 8, 3, 3) and not layer.bias.data.any()


@pytest.mark.parametrize("call,exc,words", [
    (lambda: init.calculate_gain("gelu"), ValueError, "nonlinearity must be one of 'linear', "),
    (lambda: init.calculate_gain(None), ValueError, "'relu'"),
    (lambda: init.calculate_gain(["relu"]), ValueError, "nonlinearity must be one of"),
    (lambda: init.calculate_gain("leaky_relu", "0.2"), ValueError, "param"),
    (lambda: init.calculate_gain("leaky_relu", True), ValueError, "param"),
    (lambda: init.kaiming_uniform_(np.zeros(5)), ValueError, "fewer than 2 dimensions"),
    (lambda: init.kaiming_normal_(nn.Parameter(np.zeros(5))), ValueError, "fewer than 2 dimensions"),
    (lambda: init.xavier_uniform_(np.zeros(3)), ValueError, "fewer than 2 dimensions"),
    (lambda: init._calculate_fan_in_and_fan_out(np.zeros(())), ValueError, "fewer than 2 dimensions"),
    (lambda: init.kaiming_uniform_(np.zeros((2, 2)), mode="fan_avg"), ValueError,
     "mode must be one of 'fan_in', 'fan_out', got"),
    (lambda: init.kaiming_normal_(np.zeros((2, 2)), mode=None), ValueError, "mode must be one of"),
    (lambda: init.kaiming_uniform_(np.zeros((2, 2)), nonlinearity="swish"), ValueError,
     "nonlinearity must be one of"),
    (lambda: init.kaiming_uniform_(np.zeros((2, 2)), a="x"), ValueError, "param"),
    (lambda: init.kaiming_uniform_([[0.0, 0.0]]), TypeError, "tensor must be a fastconv.nn.Parameter or a float"),
    (lambda: init.zeros_(None), TypeError, "tensor must be"),
    (lambda: init.xavier_normal_(np.zeros((2, 2), np.int64)), TypeError, "tensor must have a float dtype"),
    (lambda: init.ones_(np.zeros(2, bool)), TypeError, "tensor must have a float dtype"),
    (lambda: init.kaiming_normal_(np.zeros((2, 2)), rng="seed"), TypeError, "rng must be"),
    (lambda: init.xavier_uniform_(np.zeros((2, 2)), rng=1.5), TypeError, "rng must be"),
    (lambda: init.xavier_uniform_(np.zeros((2, 2)), gain="1"), TypeError, "gain must be a real number"),
    (lambda: init.xavier_normal_(np.zeros((2, 2)), gain=float("nan")), ValueError, "gain must be finite"),
    (lambda: init.constant_(np.zeros(2), "1"), TypeError, "val must be a real number"),
    (lambda: init.constant_(np.zeros(2), None), TypeError, "val must be a real number"),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)


def test_read_only_tensor():
    w = np.zeros((3, 3))
    w.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        init.kaiming_uniform_(w)
    assert not w.any()


# -- optional PyTorch cross-checks ---------------------------------------------------------

def test_gains_and_fans_match_torch():
    torch = pytest.importorskip("torch")
    for name in GAINS:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name), rel=1e-15)
    for slope in (0.0, 0.3, 2):
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope), rel=1e-15)
    for shape in ((7, 3), (8, 4, 3, 3), (5, 2, 4)):
        assert init._calculate_fan_in_and_fan_out(np.zeros(shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(shape))
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain("gelu")


def test_spread_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = torch.empty(SHAPE)
    ours = np.zeros(SHAPE, np.float32)
    for ours_fn, torch_fn, kw in [
        (init.kaiming_uniform_, torch.nn.init.kaiming_uniform_, dict(a=0.1, mode="fan_out")),
        (init.kaiming_normal_, torch.nn.init.kaiming_normal_, dict(nonlinearity="relu")),
        (init.xavier_uniform_, torch.nn.init.xavier_uniform_, dict(gain=2.0)),
        (init.xavier_normal_, torch.nn.init.xavier_normal_, dict(gain=0.5)),
    ]:
        ours_fn(ours, rng=0, **kw)
        torch_fn(t, **kw)
        np.testing.assert_allclose(ours.std(), t.std().item(), rtol=0.01)
        np.testing.assert_allclose(np.abs(ours).max() if "uniform" in ours_fn.__name__ else 1.0,
                                   t.abs().max().item() if "uniform" in ours_fn.__name__ else 1.0, rtol=0.01)
