"""fastconv.summary: parameter counts (counted from the layers), multiply-adds (the
formulas), output shapes (a layer-by-layer pass), receptive fields (the arithmetic, and by
perturbing input pixels), and that the model is left exactly as it was."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import _summary, nn
from fastconv.models import lenet5
from fastconv.nn import Concat, Residual
from reference import input_support


def rf_of(rows, name):
    row = next(r for r in rows if r["name"] == name)
    return row["receptive_field"], row["jump"]


def measured_field(layers, input_shape, unit, rng):
    """(size, jump) per axis of output element ``unit`` of ``Sequential(*layers)`` and its
    neighbour one step further along every spatial axis, found by perturbing input pixels."""
    model = nn.Sequential(*layers)
    model.eval()
    x = rng.standard_normal(input_shape)
    a = input_support(model, x, unit[1:])
    b = input_support(model, x, (unit[1],) + tuple(u + 1 for u in unit[2:]))
    spatial = input_shape[2:]
    for (lo, hi), n in zip(a + b, spatial + spatial):  # not clipped by the border
        assert 0 < lo and hi < n - 1, (a, b, spatial)
    return tuple(hi - lo + 1 for lo, hi in a), tuple(bl - al for (al, _), (bl, _) in zip(a, b))


def formula_mult_adds(layer, out_shape):
    if isinstance(layer, nn.Conv2d):
        n, c_out, oh, ow = out_shape
        kh, kw = layer.kernel_size
        return n * c_out * oh * ow * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, nn.Linear):
        return out_shape[0] * layer.in_features * layer.out_features
    return 0


def counted_params(layer):
    """Parameters of a layer from its sizes (not from its arrays)."""
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return layer.out_channels * layer.in_channels // layer.groups * kh * kw + \
            (layer.out_channels if layer.bias is not None else 0)
    if isinstance(layer, nn.Linear):
        return layer.out_features * layer.in_features + (layer.out_features if layer.bias is not None else 0)
    return 0


# -- LeNet-5 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 4])
def test_lenet5_numbers(n):
    model = lenet5(num_classes=10, rng=0)
    s = fastconv.summary(model, (n, 1, 28, 28))
    layers = list(model)
    assert [r["name"] for r in s.rows] == [str(i) for i in range(12)]
    assert [r["type"] for r in s.rows] == [type(m).__name__ for m in layers]
    # output shapes: one layer at a time
    x = np.zeros((n, 1, 28, 28), np.float32)
    model.eval()
    for row, layer in zip(s.rows, layers):
        assert row["input_shape"] == x.shape
        x = layer(x)
        assert row["output_shape"] == x.shape, row["name"]
    model.train()
    assert s.output_shape == (n, 10)
    # parameters, counted from the layer sizes
    per_layer = [counted_params(m) for m in layers]
    assert [r["params"] for r in s.rows] == per_layer
    assert s.total_params == sum(per_layer) == 61_706
    assert s.trainable_params == 61_706 and s.frozen_params == 0
    # multiply-adds by the formulas
    assert [r["mult_adds"] for r in s.rows] == [formula_mult_adds(m, r["output_shape"]) for m, r in zip(layers, s.rows)]
    assert s.rows[0]["mult_adds"] == n * 6 * 28 * 28 * 25
    assert s.rows[3]["mult_adds"] == n * 16 * 10 * 10 * 6 * 25
    assert s.total_mult_adds == n * (117_600 + 240_000 + 48_000 + 10_080 + 840)
    # activation memory: every output but Flatten's (a view) is a new float32 array
    assert s.activation_bytes == 4 * sum(math.prod(r["output_shape"]) for r in s.rows if r["type"] != "Flatten")
    assert s.param_bytes == 4 * 61_706


def test_lenet5_receptive_fields(rng):
    s = fastconv.summary(lenet5(), (1, 1, 28, 28))
    assert rf_of(s.rows, "0") == ((5, 5), (1, 1))  # C1
    assert rf_of(s.rows, "1") == ((5, 5), (1, 1))
    assert rf_of(s.rows, "2") == ((6, 6), (2, 2))
    assert rf_of(s.rows, "3") == ((14, 14), (2, 2))  # C3
    # after the second pool: 14 + (2 - 1) * 2 = 16, jump 4
    assert rf_of(s.rows, "5") == ((16, 16), (4, 4))
    for name in ("6", "7", "11"):  # Flatten and the fully connected layers see everything
        row = next(r for r in s.rows if r["name"] == name)
        assert row["whole_input"] and row["receptive_field"] == (28, 28) and row["jump"] is None
    # the same fields by perturbing pixels of a larger input (smooth variant, same geometry)
    smooth = list(lenet5(activation="tanh", pool="avg", rng=0, dtype=np.float64))
    for upto, unit in ((0, (0, 0, 18, 18)), (2, (0, 0, 9, 9)), (3, (0, 0, 7, 7)), (5, (0, 0, 3, 3))):
        want = rf_of(s.rows, str(upto))
        assert measured_field(smooth[:upto + 1], (1, 1, 36, 36), unit, rng) == want, upto


def test_table_text_and_method(capsys):
    model = lenet5(rng=0)
    s = fastconv.summary(model, (1, 1, 28, 28))
    assert capsys.readouterr().out == ""  # prints nothing itself
    text = str(s)
    lines = text.splitlines()
    assert "Layer (type)" in lines[2] and "RF / jump" in lines[2]
    row3 = next(line for line in lines if line.startswith("3 (Conv2d)"))
    assert "(1, 16, 10, 10)" in row3 and "2,416" in row3 and "240,000" in row3 and row3.endswith("14 / 2")
    assert any(line.startswith("7 (Linear)") and line.endswith("whole (28)") for line in lines)
    assert "Total params: 61,706" in text and "Trainable params: 61,706" in text
    assert "Non-trainable params: 0" in text and "Total mult-adds: 416,520" in text
    assert f"Parameter memory: {4 * 61_706 / 1024:.2f} KiB" in text
    assert "61,706 params" in repr(s)
    again = model.summary((1, 1, 28, 28))
    assert again.rows == s.rows and str(again) == text


def test_frozen_totals():
    model = lenet5(rng=0)
    model[0].requires_grad_(False)
    model[11].bias.requires_grad = False
    s = fastconv.summary(model, (1, 1, 28, 28))
    assert s.total_params == 61_706 and s.frozen_params == 156 + 10 and s.trainable_params == 61_706 - 166
    assert s.rows[0]["trainable_params"] == 0 and s.rows[11]["trainable_params"] == 840
    text = str(s)
    assert "156 (frozen)" in text and "850 (10 frozen)" in text and "Non-trainable params: 166" in text


def test_model_is_left_as_it_was(rng):
    # Forward a real batch, take a summary of another shape, then backward: the gradients
    # must be those of a twin model that never saw the summary.
    model, twin = lenet5(rng=0, dtype=np.float64), lenet5(rng=0, dtype=np.float64)
    model[7].eval()  # mixed training flags must come back as they were
    twin[7].eval()
    x = rng.standard_normal((3, 1, 28, 28))
    g = rng.standard_normal((3, 10))
    flags = [m.training for m in model.modules()]
    state = model.state_dict()
    y = model(x)
    arrays = {id(m): dict(m._workspace._arrays) for m in model.modules()}
    s = fastconv.summary(model, (1, 1, 28, 28), dtype=np.float64)
    assert s.rows[0]["output_shape"] == (1, 6, 28, 28)
    assert [m.training for m in model.modules()] == flags
    assert all("forward" not in m.__dict__ for m in model.modules())
    for m in model.modules():  # the arrays it reuses between steps are the same ones
        assert {k: id(v) for k, v in m._workspace._arrays.items()} == {k: id(v) for k, v in arrays[id(m)].items()}
    gx = model.backward(g)
    np.testing.assert_array_equal(y, twin(x))
    twin.backward(g)
    assert gx is None
    for (name, p), (_, q) in zip(model.named_parameters(), twin.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


class RunningMean(nn.Module):
    """A BatchNorm-like buffer: updated in training mode only."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", np.zeros(1))
        self.register_buffer("calls", np.zeros(1))

    def forward(self, x):
        self.calls += 1  # even in eval mode: summary must put it back
        if self.training:
            self.mean += x.mean()
        return x

    def backward(self, grad_output):
        return grad_output


def test_buffers_and_batchnorm_are_untouched(rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0, dtype=np.float64), RunningMean(), nn.ReLU())
    model(rng.standard_normal((2, 1, 6, 6)))
    before = {k: v.copy() for k, v in model.named_buffers()}
    s = fastconv.summary(model, (1, 1, 6, 6), dtype=np.float64)
    assert s.rows[1]["type"] == "RunningMean" and s.rows[1]["receptive_field"] == (3, 3)
    assert s.total_buffers == 2
    for k, v in model.named_buffers():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert model.training and model[1].training
    bn_cls = getattr(nn, "BatchNorm2d", None)
    if bn_cls is None:
        pytest.skip("nn.BatchNorm2d not available yet")
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=0), bn_cls(3), nn.ReLU())
    net(rng.standard_normal((4, 1, 5, 5)).astype(np.float32))
    stats = [b.copy() for b in net.buffers()]
    s = fastconv.summary(net, (2, 1, 5, 5))
    for b, old in zip(net.buffers(), stats):
        np.testing.assert_array_equal(b, old)
    assert s.rows[1]["mult_adds"] == 2 * 3 * 5 * 5 and s.rows[1]["receptive_field"] == (3, 3)
    assert s.rows[1]["params"] == 6 and net.training


# -- Residual / Concat nets ------------------------------------------------------------------

def small_residual_net(dtype=np.float32, activation=nn.Tanh):
    kw = dict(rng=0, dtype=dtype)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, **kw), activation(),
        Residual(nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1, **kw), activation(),
                               nn.Conv2d(8, 8, 3, padding=1, **kw)),
                 nn.Sequential(nn.Conv2d(4, 8, 1, stride=2, **kw))),
        nn.AvgPool2d(2),
        Residual(nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, **kw))),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 5, **kw),
    )


def test_residual_net_summary(rng):
    model = small_residual_net()
    s = fastconv.summary(model, (1, 1, 16, 16))
    names = [r["name"] for r in s.rows]
    assert names == ["0", "1", "2.body.0", "2.body.1", "2.body.2", "2.shortcut.0", "3", "4.body.0", "5", "6"]
    modules = dict(model.named_modules())
    for r in s.rows:
        m = modules[r["name"]]
        assert r["mult_adds"] == formula_mult_adds(m, r["output_shape"]), r["name"]
        assert r["params"] == counted_params(m), r["name"]
    assert s.total_params == 40 + 296 + 584 + 40 + 584 + 645 == sum(p.data.size for p in model.parameters())
    assert s.total_mult_adds == 9216 + 18432 + 36864 + 2048 + 4 * 4 * 8 * 8 * 9 + 640
    assert rf_of(s.rows, "0") == ((3, 3), (1, 1))
    assert rf_of(s.rows, "2.body.0") == ((5, 5), (2, 2))
    assert rf_of(s.rows, "2.body.2") == ((9, 9), (2, 2))
    assert rf_of(s.rows, "2.shortcut.0") == ((3, 3), (2, 2))
    assert rf_of(s.rows, "3") == ((11, 11), (4, 4))  # the larger path, 9, then the pool
    assert rf_of(s.rows, "4.body.0") == ((19, 19), (4, 4))
    assert s.rows[-1]["whole_input"] and s.output_shape == (1, 5)
    # by perturbation: fields of the pool after the first block, and of the second block
    smooth = list(small_residual_net(np.float64))
    assert measured_field(smooth[:4], (1, 1, 24, 24), (0, 0, 3, 3), rng) == ((11, 11), (4, 4))
    assert measured_field(smooth[:5], (1, 1, 36, 36), (0, 0, 4, 4), rng) == ((19, 19), (4, 4))


def test_concat_and_non_square_fields(rng):
    kw = dict(rng=0, dtype=np.float64)
    layers = [Concat(nn.Conv2d(1, 2, 3, padding=1, **kw), nn.Conv2d(1, 1, (5, 3), padding=(2, 1), **kw)),
              nn.AvgPool2d(2)]
    s = fastconv.summary(nn.Sequential(*layers), (1, 1, 12, 12), dtype=np.float64)
    assert [r["name"] for r in s.rows] == ["0.0", "0.1", "1"]
    assert rf_of(s.rows, "0.1") == ((5, 3), (1, 1))
    assert rf_of(s.rows, "1") == ((6, 4), (2, 2))  # max(3, 5) x max(3, 3), then the pool
    assert s.rows[-1]["output_shape"] == (1, 3, 6, 6)
    # per channel: the 3x3 branch's, and the 5x3 branch's (the summary's maximum)
    assert measured_field(layers, (1, 1, 20, 20), (0, 0, 5, 5), rng) == ((4, 4), (2, 2))
    assert measured_field(layers, (1, 1, 20, 20), (0, 2, 5, 5), rng) == ((6, 4), (2, 2))
    assert "6x4 / 2" in str(s)
    strided = [nn.Conv2d(1, 2, (3, 5), stride=(1, 2), dilation=(2, 1), **kw), nn.MaxPool2d((2, 1))]
    s = fastconv.summary(nn.Sequential(*strided), (1, 1, 15, 15), dtype=np.float64)
    assert rf_of(s.rows, "0") == ((5, 5), (1, 2)) and rf_of(s.rows, "1") == ((6, 5), (2, 2))
    assert s.rows[0]["mult_adds"] == 2 * 11 * 6 * 15
    assert "6x5 / 2" in str(s)
    assert measured_field(strided[:1] + [nn.AvgPool2d((2, 1))], (1, 1, 30, 30), (0, 0, 6, 6), rng) == \
        ((6, 5), (2, 2))


window = st.tuples(st.sampled_from(["conv", "avg"]), st.tuples(st.integers(1, 3), st.integers(1, 3)),
                   st.tuples(st.integers(1, 2), st.integers(1, 2)), st.tuples(st.integers(1, 2), st.integers(1, 2)))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(window, min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_receptive_field_arithmetic_matches_perturbation(specs, seed, rng):
    layers = []
    for i, (kind, k, s, d) in enumerate(specs):
        if kind == "conv":
            layers.append(nn.Conv2d(1, 1, k, stride=s, dilation=d, rng=seed + i, dtype=np.float64))
        else:
            layers.append(nn.AvgPool2d(k, s))
    model = nn.Sequential(*layers)
    last = fastconv.summary(model, (1, 1, 64, 64), dtype=np.float64).rows[-1]
    r, j = last["receptive_field"], last["jump"]
    # an input large enough for output units 1 and 2 to lie inside it on every axis
    size = tuple(ri + 4 * ji + 4 for ri, ji in zip(r, j))
    assert fastconv.summary(model, (1, 1) + size, dtype=np.float64).rows[-1]["receptive_field"] == r
    assert measured_field(layers, (1, 1) + size, (0, 0, 1, 1), rng) == (r, j)


def test_whole_input_and_spatial_free_models():
    gap_cls = getattr(nn, "AdaptiveAvgPool2d", None)
    if gap_cls is None:  # rules are looked up by class name: a stand-in of that name works
        def forward(self, x):
            return x.mean(axis=(2, 3), keepdims=True)

        gap_cls = type("AdaptiveAvgPool2d", (nn.Module,), {
            "__init__": lambda self, output_size: nn.Module.__init__(self), "forward": forward})
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), gap_cls(1), nn.Conv2d(3, 3, 1), nn.Flatten(),
                          nn.Linear(3, 2))
    s = fastconv.summary(model, (2, 1, 9, 7))
    assert s.rows[0]["receptive_field"] == (3, 3) and not s.rows[0]["whole_input"]
    assert all(r["whole_input"] and r["receptive_field"] == (9, 7) for r in s.rows[1:])
    assert "whole (9x7)" in str(s)
    assert s.rows[2]["mult_adds"] == 2 * 3 * 3  # a conv on 1x1
    mlp = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    s = fastconv.summary(mlp, (5, 4))
    assert [r["receptive_field"] for r in s.rows] == [None] * 3
    assert s.total_mult_adds == 5 * (4 * 3 + 3 * 2) and s.total_params == 15 + 8
    assert str(s).splitlines()[4].endswith("-")


def test_rules_by_name_generic_fallback_and_registration():
    def maxout_forward(self, x):
        n, c = x.shape[:2]
        return x.reshape(n, c // self.num_pieces, self.num_pieces, *x.shape[2:]).max(2)

    maxout = type("Maxout", (nn.Module,), {"forward": maxout_forward})()
    object.__setattr__(maxout, "num_pieces", 2)
    # a layer unknown to summary with window attributes: treated as a window
    blur = type("Blur", (nn.Module,), {
        "forward": lambda self, x: fastconv.avg_pool2d(x, 3, 2),
        "kernel_size": (3, 3), "stride": (2, 2), "padding": (0, 0)})()
    odd = type("Odd", (nn.Module,), {"forward": lambda self, x: x * 2})()
    model = nn.Sequential(nn.Conv2d(1, 4, 3), maxout, blur, odd)
    s = fastconv.summary(model, (1, 1, 11, 11))
    assert s.rows[1]["output_shape"] == (1, 2, 9, 9) and rf_of(s.rows, "1") == ((3, 3), (1, 1))
    assert rf_of(s.rows, "2") == ((5, 5), (2, 2)) and s.rows[2]["output_shape"] == (1, 2, 4, 4)
    assert rf_of(s.rows, "3") == ((5, 5), (2, 2)) and s.rows[3]["mult_adds"] == 0
    if hasattr(nn, "Maxout"):  # the real one, once it exists
        s = fastconv.summary(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Maxout(2)), (1, 1, 7, 7))
        assert s.rows[1]["output_shape"] == (1, 2, 5, 5) and rf_of(s.rows, "1") == ((3, 3), (1, 1))

    class Scale(nn.Module):
        def forward(self, x):
            return x * 3

    class Scale2(Scale):
        pass

    @_summary.register_layer_rule(Scale)
    def _scale_rule(layer, input_shape, output_shape):
        return math.prod(output_shape), _summary.Window(3, 1, 1)

    try:
        s = fastconv.summary(nn.Sequential(Scale(), Scale2()), (1, 1, 8, 8))
        assert [r["mult_adds"] for r in s.rows] == [64, 64]  # the subclass inherits the rule
        assert rf_of(s.rows, "1") == ((5, 5), (1, 1))
    finally:
        _summary._RULES.pop(Scale)

    @_summary.register_layer_rule(Scale)
    def _bad_rule(layer, input_shape, output_shape):
        return 0, "sideways"

    try:
        with pytest.raises(TypeError, match="expected KEEP, WHOLE or a Window"):
            fastconv.summary(nn.Sequential(Scale()), (1, 1, 4, 4))
    finally:
        _summary._RULES.pop(Scale)


def test_shared_module_counts_parameters_once():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), conv, nn.ReLU(), conv)
    s = fastconv.summary(model, (1, 1, 6, 6))
    assert len(s.rows) == 4 and s.rows[1]["name"] == s.rows[3]["name"] == "1"
    assert s.total_params == 4 + 38
    assert rf_of(s.rows, "1") == ((3, 3), (1, 1)) and s.rows[3]["receptive_field"] == (5, 5)


def test_forward_errors_leave_the_model_alone():
    model = lenet5()
    model[3].requires_grad_(False)
    before = [dict(m.__dict__) for m in model.modules()]
    with pytest.raises(ValueError, match="expects x with 1 channels"):
        fastconv.summary(model, (1, 3, 28, 28))
    with pytest.raises(TypeError, match="float64 but the layer's weight is float32"):
        fastconv.summary(model, (1, 1, 28, 28), dtype=np.float64)
    assert [dict(m.__dict__) for m in model.modules()] == before


@pytest.mark.parametrize("call,exc,words", [
    (lambda: fastconv.summary("lenet", (1, 1, 28, 28)), TypeError, "model must be a fastconv.nn.Module"),
    (lambda: fastconv.summary(lenet5(), "1x28x28"), TypeError, "input_shape must be a tuple of ints"),
    (lambda: fastconv.summary(lenet5(), None), TypeError, "input_shape must be a tuple of ints"),
    (lambda: fastconv.summary(lenet5(), (1, 1.0, 28, 28)), TypeError, "input_shape must be a tuple of ints"),
    (lambda: fastconv.summary(lenet5(), (True, 1, 28, 28)), TypeError, "input_shape must be a tuple of ints"),
    (lambda: fastconv.summary(lenet5(), (1, 0, 28, 28)), ValueError, "input_shape must have positive sizes"),
    (lambda: fastconv.summary(lenet5(), (1,)), ValueError, "input_shape must have at least 2 dims"),
    (lambda: fastconv.summary(lenet5(), (1, 1, 28, 28), dtype=np.int32), TypeError,
     "dtype must be float32 or float64"),
    (lambda: fastconv.summary(lenet5(), (1, 1, 28, 28), dtype="nonsense"), TypeError,
     "dtype must be float32 or float64"),
    (lambda: fastconv.summary(lenet5(), (1, 1, 28, 28), np.float32), TypeError, "positional"),
    (lambda: fastconv.summary(lenet5(), (10**6, 10**6, 28, 28)), MemoryError, "summary's input"),
    (lambda: _summary.register_layer_rule(3), TypeError, "cls must be a Module subclass or a class name"),
    (lambda: _summary.register_layer_rule(int), TypeError, "cls must be a Module subclass"),
    (lambda: _summary.register_layer_rule("not a name"), ValueError, "cls must be a class or a class name"),
    (lambda: _summary.register_layer_rule(nn.ReLU)(42), TypeError, "a layer rule must be callable"),
])
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    assert words in str(info.value)
