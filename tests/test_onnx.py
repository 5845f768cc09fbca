"""fastconv.onnx: export checked by onnx.checker and run by onnxruntime against fastconv's
eval-mode outputs; import (fastconv.onnx.load) against onnxruntime on the same file, from
fastconv's and torch's exporters; malformed files; backward through a loaded model."""
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import fastconv  # noqa: E402
import fastconv.onnx as fo  # noqa: E402
from fastconv import models, nn  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from test_conv_forward import CASES as CONV_CASES  # noqa: E402
from test_pool import POOL_CASES  # noqa: E402

RTOL, ATOL = 1e-5, 1e-5


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort(path, x):
    sess = _session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def _export_check(model, x, tmp_path, opset=17, dynamic_batch=True, batches=(), full_check=True, reload=True):
    """Export, check the file, compare onnxruntime with fastconv eval outputs; returns path."""
    path = tmp_path / "m.onnx"
    fo.export(model, path, x.shape, dynamic_batch=dynamic_batch, opset=opset)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=full_check)
    model.eval()
    sess = _session(path)
    loaded = fo.load(path) if reload else None
    for xb in (x, *batches):
        want = model(xb)
        got = sess.run(None, {"input": xb})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        if loaded is not None:  # the round trip: fastconv.onnx.load against onnxruntime
            np.testing.assert_allclose(loaded(xb), got, rtol=RTOL, atol=ATOL)
    return path


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _randomise_batch_norm(model, rng):
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            C = m.num_features
            m.running_mean[...] = rng.standard_normal(C) * 0.2
            m.running_var[...] = rng.uniform(0.5, 2.0, C)
            if m.affine:
                m.weight.data[...] = rng.uniform(0.5, 1.5, C)
                m.bias.data[...] = rng.standard_normal(C) * 0.2
    return model


# --- export, op by op ---------------------------------------------------------------------

PADDING_MODES = ["zeros", "reflect", "replicate", "circular"]


def _mode_fits(case, mode):
    N, C, H, W, C_out, k, s, p, d, g = case
    if mode in ("zeros", "replicate") or p in ("valid",):
        return True
    from reference import pad_amounts
    pads = pad_amounts(p, k, (d, d) if isinstance(d, int) else d, (s, s) if isinstance(s, int) else s)
    top, bottom, left, right = pads
    limit = (H, W) if mode == "circular" else (H - 1, W - 1)
    return max(top, bottom) <= limit[0] and max(left, right) <= limit[1]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
def test_export_conv2d(case, mode, bias, tmp_path, rng):
    N, C, H, W, C_out, k, s, p, d, g = case
    if not _mode_fits(case, mode):
        pytest.skip("padding larger than the input for this mode")
    m = nn.Conv2d(C, C_out, k, stride=s, padding=p, dilation=d, groups=g, bias=bias,
                  padding_mode=mode, rng=rng)
    _export_check(m, _rand(rng, (N, C, H, W)), tmp_path, batches=[_rand(rng, (N + 2, C, H, W))])


@pytest.mark.parametrize("opset", [13, 19, 22])
def test_export_conv2d_padding_modes_other_opsets(opset, tmp_path, rng):
    layers = [nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode=mode, rng=rng) for mode in PADDING_MODES]
    seq = nn.Sequential(layers[0], nn.Conv2d(3, 2, 1, rng=rng), layers[1], nn.Conv2d(3, 2, 1, rng=rng),
                        layers[2], nn.Conv2d(3, 2, 1, rng=rng), layers[3])
    _export_check(seq, _rand(rng, (2, 2, 6, 7)), tmp_path, opset=opset)


@pytest.mark.parametrize("kind", ["max", "avg_include", "avg_exclude"])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_export_pool2d(case, kind, tmp_path, rng):
    shape, k, s, p, ceil = case
    if kind == "max":
        m = nn.MaxPool2d(k, s, p, ceil_mode=ceil)
    else:
        m = nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=kind == "avg_include")
    x = _rand(rng, shape)
    _export_check(m, x, tmp_path, batches=[_rand(rng, (3, *shape[1:]))])


def _pool_sweep():
    """Drawn pool geometries (ceil mode and padding corner cases the table misses)."""
    r = np.random.default_rng(7)
    cases = []
    while len(cases) < 40:
        k = (int(r.integers(1, 5)), int(r.integers(1, 5)))
        s = (int(r.integers(1, 4)), int(r.integers(1, 4)))
        p = (int(r.integers(0, k[0] // 2 + 1)), int(r.integers(0, k[1] // 2 + 1)))
        H, W = int(r.integers(k[0], 10)), int(r.integers(k[1], 10))
        cases.append(((1, 2, H, W), k, s, p, bool(r.integers(0, 2))))
    return cases


@pytest.mark.parametrize("case", _pool_sweep())
def test_export_pool2d_drawn(case, tmp_path, rng):
    shape, k, s, p, ceil = case
    x = _rand(rng, shape)
    model = nn.Concat(nn.Sequential(nn.MaxPool2d(k, s, p, ceil_mode=ceil), nn.Flatten()),
                      nn.Sequential(nn.AvgPool2d(k, s, p, ceil_mode=ceil), nn.Flatten()),
                      nn.Sequential(nn.AvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=False),
                                    nn.Flatten()))
    _export_check(model, x, tmp_path)


@pytest.mark.parametrize("cls", [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d])
@pytest.mark.parametrize("hw, out", [((7, 5), 1), ((8, 6), (4, 3)), ((5, 7), (4, 6)), ((6, 6), (None, 2)),
                                      ((6, 9), (6, 9)), ((7, 7), 3)])
def test_export_adaptive_pool2d(cls, hw, out, tmp_path, rng):
    _export_check(cls(out), _rand(rng, (2, 3, *hw)), tmp_path, batches=[_rand(rng, (1, 3, *hw))])


def test_export_global_pools_use_global_ops(tmp_path, rng):
    path = _export_check(nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Conv2d(3, 3, 1, rng=rng),
                                       nn.AdaptiveAvgPool2d((1, 1))), _rand(rng, (2, 3, 5, 4)), tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops == ["GlobalMaxPool", "Conv", "GlobalAveragePool"]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (4, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                        (nn.BatchNorm2d, (2, 3, 4, 5))])
def test_export_batch_norm(cls, shape, affine, tmp_path, rng):
    m = _randomise_batch_norm(cls(3, eps=1e-3, affine=affine), rng)
    _export_check(m, _rand(rng, shape), tmp_path, batches=[_rand(rng, (7, *shape[1:]))])


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (4, 3)), (nn.BatchNorm1d, (4, 3, 5)),
                                        (nn.BatchNorm2d, (2, 3, 4, 5))])
def test_export_batch_norm_batch_statistics(cls, shape, affine, opset, tmp_path, rng):
    """track_running_stats=False: the batch's statistics in evaluation mode too (export
    only: the importer does not read the arithmetic it becomes)."""
    m = cls(3, eps=1e-3, affine=affine, track_running_stats=False)
    if affine:
        m.weight.data[...] = rng.uniform(0.5, 1.5, 3)
        m.bias.data[...] = rng.standard_normal(3)
    _export_check(m, _rand(rng, shape) * 2 + 1, tmp_path, opset=opset, batches=[_rand(rng, (7, *shape[1:]))],
                  reload=False)


@pytest.mark.parametrize("bias", [True, False])
def test_export_linear(bias, tmp_path, rng):
    _export_check(nn.Linear(6, 4, bias=bias, rng=rng), _rand(rng, (3, 6)), tmp_path,
                  batches=[_rand(rng, (1, 6)), _rand(rng, (9, 6))])


@pytest.mark.parametrize("start_dim", [1, 2, 3])
def test_export_flatten(start_dim, tmp_path, rng):
    _export_check(nn.Flatten(start_dim), _rand(rng, (2, 3, 4, 5)), tmp_path, batches=[_rand(rng, (5, 3, 4, 5))])


ACTIVATIONS = [nn.ReLU(), nn.LeakyReLU(0.2), nn.LeakyReLU(), nn.ELU(), nn.ELU(0.5), nn.Tanh(), nn.Sigmoid(),
               nn.Identity(), nn.Dropout(0.5), nn.Softmax(1), nn.Softmax(-1), nn.Softmax(2),
               nn.LogSoftmax(1), nn.LogSoftmax(-1), nn.LogSoftmax(0)]


@pytest.mark.parametrize("layer", ACTIVATIONS, ids=[repr(a) for a in ACTIVATIONS])
def test_export_activations(layer, tmp_path, rng):
    x = _rand(rng, (2, 3, 4, 5)) * 3
    batches = [] if getattr(layer, "dim", None) == 0 else [_rand(rng, (4, 3, 4, 5))]
    _export_check(layer, x, tmp_path, batches=batches)


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("shape, k", [((2, 6), 2), ((2, 6, 4, 5), 3), ((3, 4, 5), 4)])
def test_export_maxout(shape, k, opset, tmp_path, rng):
    _export_check(nn.Maxout(k), _rand(rng, shape), tmp_path, opset=opset, batches=[_rand(rng, (5, *shape[1:]))])


def test_export_containers(tmp_path, rng):
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, rng=rng),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=rng), nn.ReLU())),
        nn.Residual(nn.Conv2d(4, 6, 3, stride=2, padding=1, rng=rng), nn.Conv2d(4, 6, 1, stride=2, rng=rng)),
        nn.Concat(nn.Conv2d(6, 2, 1, rng=rng), nn.Identity(), nn.MaxPool2d(3, 1, 1)),
        nn.Flatten(), nn.Linear(14 * 4 * 4, 3, rng=rng), nn.LogSoftmax(),
    )
    _export_check(model, _rand(rng, (2, 2, 8, 8)), tmp_path, batches=[_rand(rng, (1, 2, 8, 8))])


def test_export_identity_model_and_no_nodes(tmp_path, rng):
    _export_check(nn.Sequential(nn.Dropout(), nn.Identity()), _rand(rng, (2, 3)), tmp_path)


# --- export, whole models ---------------------------------------------------------------

MODEL_NAMES = ["lenet5", "resnet8", "resnet20", "vgg_small"]


def _model(name, seed=0):
    m = models.MODELS[name](rng=seed)
    return _randomise_batch_norm(m, np.random.default_rng(seed + 1))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_export_models(name, tmp_path, rng):
    m = _model(name)
    path = _export_check(m, _rand(rng, (1, 1, 28, 28)), tmp_path, batches=[_rand(rng, (4, 1, 28, 28))])
    proto = onnx.load(str(path))
    # initializers are the state-dict keys (BatchNorm's counter is not a tensor of the graph)
    keys = {k for k in m.state_dict() if not k.endswith("num_batches_tracked")}
    assert {i.name for i in proto.graph.initializer} == keys
    for init in proto.graph.initializer:
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(init), m.state_dict()[init.name])
    props = {p.key: p.value for p in proto.metadata_props}
    import json
    assert json.loads(props["fastconv.config"]) == m.config
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"


@pytest.mark.parametrize("opset", [13, 16, 18, 21, 22])
@pytest.mark.parametrize("name", ["lenet5", "resnet8"])
def test_export_models_opsets(name, opset, tmp_path, rng):
    proto_path = _export_check(_model(name), _rand(rng, (2, 1, 28, 28)), tmp_path, opset=opset)
    assert onnx.load(str(proto_path)).opset_import[0].version == opset


def test_export_static_batch(tmp_path, rng):
    path = _export_check(_model("lenet5"), _rand(rng, (3, 1, 28, 28)), tmp_path, dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 1, 28, 28]
    with pytest.raises(Exception):
        _ort(path, _rand(rng, (2, 1, 28, 28)))


def test_export_keeps_training_mode_and_state(tmp_path):
    m = _model("resnet8")
    m.train()
    before = m.state_dict()
    fo.export(m, tmp_path / "m.onnx", (1, 1, 28, 28))
    assert all(mod.training for mod in m.modules())
    after = m.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_export_float64(tmp_path, rng):
    m = nn.Sequential(nn.Linear(5, 3, rng=rng, dtype=np.float64), nn.Tanh())
    path = tmp_path / "m.onnx"
    fo.export(m, path, (2, 5))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    x = rng.standard_normal((2, 5))
    np.testing.assert_allclose(_ort(path, x), m(x), rtol=1e-12)


def test_export_is_atomic_and_overwrites(tmp_path, rng):
    path = tmp_path / "sub" / "m.onnx"
    fo.export(nn.ReLU(), path, (1, 3))
    first = path.read_bytes()
    fo.export(nn.Sequential(nn.Linear(3, 2, rng=rng)), path, (1, 3))
    assert path.read_bytes() != first
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]
    with pytest.raises(ValueError):
        fo.export(nn.AdaptiveAvgPool2d(3), path, (1, 1, 5, 5))
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.onnx"]


class _Custom(nn.Module):
    def forward(self, x):
        return x


EXPORT_ERRORS = [
    (lambda p: fo.export("model", p, (1, 3)), TypeError, "model must be a fastconv.nn.Module"),
    (lambda p: fo.export(nn.ReLU(), p, 3), TypeError, "input_shape must be a tuple"),
    (lambda p: fo.export(nn.ReLU(), p, "1,3"), TypeError, "input_shape must be a tuple"),
    (lambda p: fo.export(nn.ReLU(), p, ()), TypeError, "non-empty tuple of ints"),
    (lambda p: fo.export(nn.ReLU(), p, (1, 2.0)), TypeError, "non-empty tuple of ints"),
    (lambda p: fo.export(nn.ReLU(), p, (1, 0)), ValueError, "positive sizes"),
    (lambda p: fo.export(nn.ReLU(), p, (2**20, 2**20)), ValueError, "too large"),
    (lambda p: fo.export(nn.ReLU(), p, (1, 3), opset=12), ValueError, "opset must be in [13, 22]"),
    (lambda p: fo.export(nn.ReLU(), p, (1, 3), opset="17"), TypeError, "opset must be an int"),
    (lambda p: fo.export(nn.ReLU(), p, (1, 3), dynamic_batch=1), TypeError, "dynamic_batch must be a bool"),
    (lambda p: fo.export(nn.Sequential(nn.ReLU(), _Custom()), p, (1, 3)), ValueError,
     "layer '1' (_Custom) to ONNX: no ONNX exporter"),
    (lambda p: fo.export(nn.Sequential(nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d((3, 2)))), p, (1, 1, 5, 4)),
     ValueError, "layer '0.1' (AdaptiveAvgPool2d)"),
    (lambda p: fo.export(nn.AdaptiveMaxPool2d(2, return_indices=True), p, (1, 1, 4, 4)), ValueError,
     "return_indices"),
    (lambda p: fo.export(models.lenet5(), p, (1, 3, 28, 28)), ValueError, "layer '0' (Conv2d)"),
    (lambda p: fo.export(models.lenet5(), p, (1, 1, 20, 20)), ValueError, "layer '7' (Linear)"),
    (lambda p: fo.export(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2, dtype=np.float64)), p, (1, 2)),
     ValueError, "several dtypes"),
]


@pytest.mark.parametrize("call, exc, words", EXPORT_ERRORS, ids=[w for _, _, w in EXPORT_ERRORS])
def test_export_bad_arguments(call, exc, words, tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(exc) as e:
        call(path)
    assert words in str(e.value)
    assert not path.exists()


def test_without_onnx_installed(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "fastconv\[onnx\]"'):
        fo.export(nn.ReLU(), tmp_path / "m.onnx", (1, 3))
    with pytest.raises(ImportError, match=r'pip install "fastconv\[onnx\]"'):
        fo.load(tmp_path / "m.onnx")


# --- Graph, its ops and the pad layers ----------------------------------------------------

def _graph(rng):
    return nn.Graph([
        ("conv1", nn.Conv2d(2, 4, 3, padding=1, rng=rng), ["input"]),
        ("relu1", nn.ReLU(), ["conv1"]),
        ("split", nn.Split([1, 3]), ["relu1"], ["a", "b"]),
        ("cat", nn.Cat(1), ["b", "a", "conv1"]),
        ("add", nn.Add(), ["cat", "cat"]),
        ("pad", nn.ReflectionPad2d((1, -1, 2, 0)), ["add"]),
        ("conv2", nn.Conv2d(8, 3, 2, rng=rng), ["pad"]),
        ("sum", nn.Add(), ["conv2", "conv2", "conv2"]),
    ])


def test_export_graph(tmp_path, rng):
    path = _export_check(_graph(rng), _rand(rng, (2, 2, 6, 6)), tmp_path, batches=[_rand(rng, (3, 2, 6, 6))])
    assert isinstance(fo.load(path), nn.Graph)


def test_export_graph_several_outputs(tmp_path, rng):
    g = nn.Graph([("s", nn.Split(2), ["input"], ["a", "b"]), ("add", nn.Add(), ["a", "b", "a"])],
                 outputs=["add", "a", "input"])
    path = tmp_path / "m.onnx"
    fo.export(g, path, (2, 4, 3))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = _rand(rng, (2, 4, 3))
    for got, want in zip(_session(path).run(None, {"input": x}), g(x)):
        np.testing.assert_array_equal(got, want)


PAD_LAYERS = [nn.ZeroPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d, nn.CircularPad2d]


@pytest.mark.parametrize("opset", [17, 21])
@pytest.mark.parametrize("padding", [(1, 2, 0, 3), (-1, 2, 1, -2), (0, 0, 0, 0), (-2, -1, 0, 0), 2])
@pytest.mark.parametrize("cls", PAD_LAYERS)
def test_export_pad_layers(cls, padding, opset, tmp_path, rng):
    _export_check(cls(padding), _rand(rng, (2, 3, 5, 6)), tmp_path, opset=opset, batches=[_rand(rng, (1, 3, 5, 6))])


@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (3, 5, 6)])
def test_export_constant_pad(shape, tmp_path, rng):
    _export_check(nn.ConstantPad2d((1, -1, 2, 3), 2.5), _rand(rng, shape), tmp_path, dynamic_batch=len(shape) == 4)


# --- import: from fastconv's exporter ------------------------------------------------------

@pytest.mark.parametrize("name", MODEL_NAMES)
def test_load_models_round_trip(name, tmp_path, rng):
    m = _model(name)
    path = tmp_path / "m.onnx"
    fo.export(m, path, (1, 1, 28, 28))
    loaded = fo.load(path)
    chain = name in ("lenet5", "vgg_small")
    assert isinstance(loaded, nn.Sequential if chain else nn.Graph)
    assert loaded.config == m.config
    assert not loaded.training
    m.eval()
    x = _rand(rng, (3, 1, 28, 28))
    np.testing.assert_allclose(loaded(x), _ort(path, x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(loaded(x), m(x), rtol=RTOL, atol=ATOL)
    # the same weights, as Parameters
    params = loaded.parameters()
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    assert sum(p.data.size for p in params) == sum(p.data.size for p in m.parameters())
    if name == "lenet5":  # one fastconv layer per node: the same state-dict keys
        assert list(loaded.state_dict()) == list(m.state_dict())
    if name == "resnet8":  # Graph nodes named after the weights' keys
        keys = loaded.state_dict()
        assert "3_0_0_body_0.weight" in keys and "4_0_0_shortcut_1.running_var" in keys
        np.testing.assert_array_equal(keys["3_0_0_body_0.weight"], m.state_dict()["3.0.0.body.0.weight"])


def test_load_round_trip_through_onnx_load(tmp_path, rng):
    """fastconv -> ONNX -> onnx.load -> onnx.save -> fastconv.onnx.load."""
    m = _model("resnet8")
    path = tmp_path / "m.onnx"
    fo.export(m, path, (1, 1, 28, 28))
    proto = onnx.load(str(path))
    again = tmp_path / "again.onnx"
    onnx.save(proto, str(again))
    x = _rand(rng, (2, 1, 28, 28))
    m.eval()
    np.testing.assert_allclose(fo.load(again)(x), m(x), rtol=RTOL, atol=ATOL)


def test_load_external_data_inside_folder(tmp_path, rng):
    m = _model("lenet5")
    path = tmp_path / "m.onnx"
    fo.export(m, path, (1, 1, 28, 28))
    proto = onnx.load(str(path))
    ext = tmp_path / "ext" / "m.onnx"
    ext.parent.mkdir()
    onnx.save_model(proto, str(ext), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="m.onnx.data", size_threshold=0)
    x = _rand(rng, (2, 1, 28, 28))
    np.testing.assert_allclose(fo.load(ext)(x), _ort(path, x), rtol=RTOL, atol=ATOL)


def test_load_backward_by_finite_differences(tmp_path):
    """Backward through a loaded float64 model (a Graph with fan-out, Split, Cat, pads, BN)
    against central differences, for the input and for the parameters."""
    r = np.random.default_rng(3)
    g = nn.Graph([
        ("conv1", nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect", rng=r, dtype=np.float64), ["input"]),
        ("bn", nn.BatchNorm2d(4, dtype=np.float64), ["conv1"]),
        ("act", nn.Tanh(), ["bn"]),
        ("split", nn.Split([1, 3]), ["act"], ["a", "b"]),
        ("cat", nn.Cat(1), ["b", "a", "conv1"]),
        ("pool", nn.AvgPool2d(3, 2, 1, ceil_mode=True), ["cat"]),
        ("add", nn.Add(), ["pool", "pool"]),
        ("flat", nn.Flatten(), ["add"]),
        ("fc", nn.Linear(8 * 3 * 3, 3, rng=r, dtype=np.float64), ["flat"]),
    ])
    _randomise_batch_norm(g, r)
    path = tmp_path / "g.onnx"
    fo.export(g, path, (2, 2, 5, 5))
    loaded = fo.load(path)
    x = r.standard_normal((2, 2, 5, 5))
    gy = r.standard_normal((2, 3))
    loaded.eval()
    y = loaded(x)
    loaded.zero_grad()
    gx = loaded.backward(gy)

    xp = x.copy()

    def f():
        return float(np.sum(loaded(xp) * gy))

    from reference import numerical_grad
    np.testing.assert_allclose(gx, numerical_grad(f, xp), rtol=1e-6, atol=1e-8)
    for name, p in loaded.named_parameters():
        np.testing.assert_allclose(p.grad, numerical_grad(f, p.data), rtol=1e-6, atol=1e-8, err_msg=name)
    assert y.shape == (2, 3)


def test_load_fine_tune_frozen_prefix(tmp_path, rng):
    path = tmp_path / "m.onnx"
    fo.export(_model("lenet5"), path, (1, 1, 28, 28))
    loaded = fo.load(path)
    from fastconv.training import freeze
    assert freeze(loaded, ["0", "3"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    frozen = {k: v.copy() for k, v in loaded.state_dict().items() if k[0] in "03"}
    opt = fastconv.optim.SGD(loaded.parameters(), lr=0.1)
    loss = nn.CrossEntropyLoss()
    loaded.train()
    x, y = _rand(rng, (8, 1, 28, 28)), rng.integers(0, 10, 8)
    first = None
    for _ in range(5):
        value = loss(loaded(x), y)
        first = value if first is None else first
        opt.zero_grad()
        loaded.backward(loss.backward())
        opt.step()
    assert loss(loaded(x), y) < first
    for k, v in frozen.items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)


# --- import: from torch.onnx.export ---------------------------------------------------------

def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


def _torch_export(torch, model, x, path, dynamo, **kw):
    """torch.onnx.export with the legacy (dynamo=False) or the default exporter (a dynamic
    batch either way); skips when that exporter is not available here (an export that
    fails is a failure)."""
    import warnings

    model.eval()
    if dynamo:
        pytest.importorskip("onnxscript")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=1024)
                x2 = torch.cat([x, x])  # a sample batch of 1 would be specialised
                torch.onnx.export(model, (x2,), str(path), dynamo=True, dynamic_shapes=({0: batch},),
                                  verbose=False, **kw)
            else:
                torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["x"],
                                  dynamic_axes={"x": {0: "N"}}, **kw)
    except (TypeError, ImportError) as e:
        pytest.skip(f"torch.onnx.export (dynamo={dynamo}) is not available here: {e}")


def _torch_zoo(torch):
    tn = torch.nn
    return tn.Sequential(
        tn.Conv2d(2, 6, 3, padding=1, padding_mode="reflect"), tn.BatchNorm2d(6), tn.LeakyReLU(0.1),
        tn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), tn.ELU(0.7),
        tn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=3), tn.Sigmoid(),
        tn.MaxPool2d(2, ceil_mode=True), tn.Conv2d(6, 4, 3, padding=1, padding_mode="replicate", bias=False),
        tn.Tanh(), tn.AvgPool2d(2), tn.Flatten(), tn.Linear(4 * 2 * 2, 8), tn.Dropout(0.2), tn.ReLU(),
        tn.Linear(8, 5), tn.LogSoftmax(dim=1))


def _torch_circular(torch):
    tn = torch.nn  # circular padding: Slice + Concat (legacy) or Pad wrap (dynamo); "same" with an even kernel
    return tn.Sequential(tn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"), tn.ReLU(),
                         tn.Conv2d(3, 3, 4, padding="same"), tn.AdaptiveAvgPool2d((2, 2)), tn.Flatten(),
                         tn.Linear(12, 4), tn.Softmax(dim=1))


@pytest.mark.parametrize("dynamo", [False, True], ids=["legacy", "dynamo"])
@pytest.mark.parametrize("name", ["lenet5", "resnet8", "zoo", "circular"])
def test_load_from_torch(name, dynamo, tmp_path, rng):
    torch = _torch()
    from torch_models import TORCH_MODELS

    torch.manual_seed(0)
    if name == "zoo":
        tm, shape = _torch_zoo(torch), (1, 2, 13, 13)
    elif name == "circular":
        tm, shape = _torch_circular(torch), (1, 2, 8, 8)
    else:
        tm, shape = TORCH_MODELS[name](), (1, 1, 28, 28)
    for mod in tm.modules():  # BatchNorm statistics that are not the identity
        if isinstance(mod, torch.nn.BatchNorm2d):
            with torch.no_grad():
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    path = tmp_path / "t.onnx"
    kw = {} if dynamo else {"do_constant_folding": name != "zoo"}  # the zoo keeps its BatchNormalization
    _torch_export(torch, tm, torch.zeros(shape), path, dynamo, **kw)
    loaded = fo.load(path)
    for n in (1, 4):
        x = _rand(rng, (n, *shape[1:]))
        got = loaded(x)
        np.testing.assert_allclose(got, _ort(path, x), rtol=RTOL, atol=ATOL)
        with torch.no_grad():
            np.testing.assert_allclose(got, tm(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
    if name == "zoo":
        kinds = {type(m).__name__ for m in loaded.modules()}
        assert {"Conv2d", "AvgPool2d", "MaxPool2d", "ELU", "LeakyReLU", "Sigmoid", "Tanh", "Linear",
                "LogSoftmax"} <= kinds
        convs = [m for m in loaded.modules() if isinstance(m, nn.Conv2d)]
        assert [c.padding_mode for c in convs] == ["reflect", "zeros", "replicate"]
    # backward runs and reaches every parameter (a random grad_output: through a final
    # Softmax a constant one has zero gradient, leaving only rounding noise)
    loaded.train()
    y = loaded(_rand(rng, (3, *shape[1:])))
    loaded.zero_grad()
    loaded.backward(_rand(rng, y.shape))
    assert all(np.any(p.grad != 0) for p in loaded.parameters())


def test_transfer_learning_torch_lenet_to_fashion_mnist(tmp_path, mnist_dir, fashion_dir):
    """PyTorch LeNet-5 trained briefly on MNIST -> torch.onnx.export -> fastconv.onnx.load ->
    convolutions frozen -> fine-tuned on Fashion-MNIST with fastconv."""
    torch = _torch()
    from torch_models import lenet5 as torch_lenet5
    from fastconv.datasets import DATASETS, BatchIterator, load_dataset
    from fastconv.training import freeze, predict

    mx, my = load_dataset("mnist", mnist_dir, "train")
    info = DATASETS["mnist"]
    torch.manual_seed(0)
    tm = torch_lenet5()
    opt = torch.optim.Adam(tm.parameters(), lr=2e-3)
    batches = BatchIterator(mx[:19200], my[:19200], 64, shuffle=True, normalize=(info.mean, info.std), rng=0)
    tm.train()
    for x, y in batches:  # 300 steps
        loss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path / "lenet.onnx"
    _torch_export(torch, tm, torch.zeros(1, 1, 28, 28), path, dynamo=False)

    model = fo.load(path)
    assert isinstance(model, nn.Sequential)
    assert freeze(model, ["0", "3"]) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    frozen = {k: v.copy() for k, v in model.state_dict().items() if k.split(".")[0] in ("0", "3")}
    for k, v in frozen.items():  # the weights are PyTorch's
        np.testing.assert_array_equal(v, tm.state_dict()[k].numpy())

    fx, fy = load_dataset("fashion-mnist", fashion_dir, "train")
    tx, ty = load_dataset("fashion-mnist", fashion_dir, "test")
    finfo = DATASETS["fashion-mnist"]
    norm = (finfo.mean, finfo.std)
    optimizer = fastconv.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for x, y in BatchIterator(fx[:19200], fy[:19200], 64, shuffle=True, normalize=norm, rng=1):  # 300 steps
        loss_fn(model(x), y)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    acc = float(np.mean(predict(model, BatchIterator(tx[:2000], ty[:2000], 500, normalize=norm)) == ty[:2000]))
    print(f"fine-tuned Fashion-MNIST accuracy (2000 test images): {acc:.4f}")
    assert acc > 0.65, acc  # chance is 0.10
    for k, v in frozen.items():
        np.testing.assert_array_equal(model.state_dict()[k], v)


# --- import: malformed, hostile and unsupported files -----------------------------------------

from onnx import TensorProto, helper, numpy_helper  # noqa: E402


@pytest.fixture
def lenet_file(tmp_path):
    path = tmp_path / "lenet.onnx"
    fo.export(_model("lenet5"), path, (1, 1, 28, 28))
    return path


def _edit(path, tmp_path, fn, name="edited.onnx"):
    proto = onnx.load(str(path))
    fn(proto)
    out = tmp_path / name
    out.write_bytes(proto.SerializeToString())
    return out


def _node(proto, op_type):
    return next(n for n in proto.graph.node if n.op_type == op_type)


def _init(proto, name):
    return next(i for i in proto.graph.initializer if i.name == name)


def _replace_init(proto, name, array):
    t = _init(proto, name)
    t.CopyFrom(numpy_helper.from_array(array, name))


def _set_attr(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


def _cycle(proto):
    nodes = proto.graph.node
    nodes[0].input[0] = nodes[2].output[0]  # Conv reads MaxPool's output: Conv -> Relu -> MaxPool -> Conv


def _external(location):
    def fn(proto):
        t = _init(proto, "0.weight")
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", str(150 * 4))):
            e = t.external_data.add()
            e.key, e.value = k, v
    return fn


def _huge_dims(proto):
    t = _init(proto, "0.weight")
    del t.dims[:]
    t.dims.extend([2**40, 1, 5, 5])


def _short_raw(proto):
    t = _init(proto, "0.weight")
    t.raw_data = t.raw_data[:-4]


MALFORMED = [
    ("truncated", lambda p, d: _write(d, p.read_bytes()[: len(p.read_bytes()) // 3]), ValueError, ""),
    ("empty", lambda p, d: _write(d, b""), ValueError, "not an ONNX model"),
    ("garbage", lambda p, d: _write(d, b"\xff\xfe\x00garbage" * 10), ValueError, "not an ONNX model"),
    ("missing initializer", lambda p, d: _edit(p, d, lambda m: m.graph.initializer.remove(_init(m, "3.weight"))),
     ValueError, "input '3.weight' is neither a graph input, an initializer nor any node's output"),
    ("float16 initializer", lambda p, d: _edit(p, d, lambda m: _replace_init(m, "0.bias", np.zeros(6, np.float16))),
     ValueError, "dtype FLOAT16"),
    ("float64 initializer", lambda p, d: _edit(p, d, lambda m: _replace_init(m, "0.weight", np.zeros((6, 1, 5, 5)))),
     ValueError, "wrong initializer dtype"),
    ("int initializer", lambda p, d: _edit(p, d, lambda m: _replace_init(m, "7.weight", np.zeros((120, 400), np.int64))),
     ValueError, "wrong initializer dtype"),
    ("short raw data", lambda p, d: _edit(p, d, _short_raw), ValueError, "declares dims [6, 1, 5, 5] (150 values)"),
    ("huge dims", lambda p, d: _edit(p, d, _huge_dims), ValueError, "too large"),
    ("cycle", lambda p, d: _edit(p, d, _cycle), ValueError, "cycle"),
    ("external data outside", lambda p, d: _edit(p, d, _external("../../etc/passwd")), ValueError,
     "not a file inside the model's folder"),
    ("external data absolute", lambda p, d: _edit(p, d, _external("/etc/passwd")), ValueError,
     "not a file inside the model's folder"),
    ("external data missing", lambda p, d: _edit(p, d, _external("nothing.bin")), ValueError,
     "not a file inside the model's folder"),
    ("opset too old", lambda p, d: _edit(p, d, lambda m: m.opset_import[0].__setattr__("version", 7)), ValueError,
     "opset 7 is not supported"),
    ("opset too new", lambda p, d: _edit(p, d, lambda m: m.opset_import[0].__setattr__("version", 40)), ValueError,
     "opset 40 is not supported"),
    ("unknown op", lambda p, d: _edit(p, d, lambda m: _node(m, "Relu").__setattr__("op_type", "HardSwish")),
     ValueError, "node '1/Relu' (HardSwish): operator 'HardSwish' is not supported"),
    ("unknown domain", lambda p, d: _edit(p, d, lambda m: _node(m, "Relu").__setattr__("domain", "com.microsoft")),
     ValueError, "node '1/Relu' (Relu): operator domain 'com.microsoft'"),
    ("conv attribute", lambda p, d: _edit(p, d, lambda m: _set_attr(_node(m, "Conv"), "auto_pad", "BOGUS")),
     ValueError, "node '0/Conv' (Conv): attribute auto_pad='BOGUS' is not supported"),
    ("pool dilations", lambda p, d: _edit(p, d, lambda m: _set_attr(_node(m, "MaxPool"), "dilations", [2, 2])),
     ValueError, "node '2/MaxPool' (MaxPool): attribute dilations=[2, 2] is not supported"),
    ("unknown attribute", lambda p, d: _edit(p, d, lambda m: _set_attr(_node(m, "Relu"), "beta", 2.0)),
     ValueError, "node '1/Relu' (Relu): attribute beta=2.0 is not supported"),
    ("gemm transA", lambda p, d: _edit(p, d, lambda m: _set_attr(_node(m, "Gemm"), "transA", 1)),
     ValueError, "(Gemm): attribute transA=1 is not supported"),
    ("flatten axis", lambda p, d: _edit(p, d, lambda m: _set_attr(_node(m, "Flatten"), "axis", 2)),
     ValueError, "(Flatten): attribute axis=2 is not supported"),
    ("dynamic height", lambda p, d: _edit(p, d, lambda m: m.graph.input[0].type.tensor_type.shape.dim[2]
                                          .__setattr__("dim_param", "H")),
     ValueError, "symbolic or zero size on axis 2"),
    ("int input", lambda p, d: _edit(p, d, lambda m: m.graph.input[0].type.tensor_type.__setattr__("elem_type",
                                                                                                   TensorProto.INT64)),
     ValueError, "fastconv reads FLOAT or DOUBLE inputs"),
    ("huge input", lambda p, d: _edit(p, d, lambda m: m.graph.input[0].type.tensor_type.shape.dim[2]
                                      .__setattr__("dim_value", 2**40)),
     ValueError, "too large"),
    ("wrong input size", lambda p, d: _edit(p, d, lambda m: m.graph.input[0].type.tensor_type.shape.dim[2]
                                            .__setattr__("dim_value", 20)),
     ValueError, "(Gemm): Linear refuses its input of shape (1, 240)"),
    ("output nobody makes", lambda p, d: _edit(p, d, lambda m: m.graph.output[0].__setattr__("name", "ghost")),
     ValueError, "graph output 'ghost' is produced by no node"),
    ("duplicate output", lambda p, d: _edit(p, d, lambda m: m.graph.node[1].output.__setitem__(0, m.graph.node[0].output[0])),
     ValueError, "is already produced by another node"),
]


def _write(tmp_path, data):
    out = tmp_path / "bad.onnx"
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("make, exc, words", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_load_malformed(make, exc, words, lenet_file, tmp_path):
    bad = make(lenet_file, tmp_path)
    with pytest.raises(exc) as e:
        fo.load(bad)
    assert words in str(e.value)
    assert str(bad) in str(e.value)


def _tiny(nodes, inits=(), opset=17, shape=(1, 2, 4, 4), out_shape=None):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                          [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


UNSUPPORTED = [
    ("reshape not a flatten", [helper.make_node("Reshape", ["x", "s"], ["y"], name="r")],
     [("s", np.array([1, 4, 8], np.int64))], "node 'r' (Reshape): fastconv converts Reshape where it is a flatten"),
    ("add constant", [helper.make_node("Add", ["x", "c"], ["y"], name="a")], [("c", np.ones(1, np.float32))],
     "node 'a' (Add): input 'c' is a constant"),
    ("batchnorm training", [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn",
                                             training_mode=1)],
     [(k, np.ones(2, np.float32)) for k in "sbmv"], "node 'bn' (BatchNormalization): attribute training_mode=1"),
    ("conv weight computed", [helper.make_node("Conv", ["x", "x"], ["y"], name="c")], [],
     "node 'c' (Conv): weight (input 'x') must be a constant"),
    ("pool asymmetric", [helper.make_node("MaxPool", ["x"], ["y"], name="p", kernel_shape=[2, 2], pads=[1, 0, 0, 0])],
     [], "node 'p' (MaxPool): asymmetric pads"),
    ("pad batch axis", [helper.make_node("Pad", ["x", "p"], ["y"], name="pad")],
     [("p", np.array([1, 0, 0, 0, 0, 0, 0, 0], np.int64))], "node 'pad' (Pad): fastconv pads the last two axes"),
    ("3-D conv", [helper.make_node("Conv", ["x", "w"], ["y"], name="c3")], [("w", np.ones((1, 2, 1, 1, 1), np.float32))],
     "node 'c3' (Conv): weight must be 4-D"),
    ("softmax old opset", [helper.make_node("Softmax", ["x"], ["y"], name="sm", axis=1)], [],
     "node 'sm' (Softmax): attribute axis=1 (opset 11"),
    ("reduce over channels", [helper.make_node("ReduceMean", ["x"], ["y"], name="rm", axes=[1])], [],
     "node 'rm' (ReduceMean): fastconv converts ReduceMean over the spatial axes"),
    ("unnamed node", [helper.make_node("Celu", ["x"], ["y"])], [], "a Celu node (no name): operator 'Celu'"),
]


@pytest.mark.parametrize("nodes, inits, words", [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED])
def test_load_unsupported(nodes, inits, words, tmp_path):
    opset = 11 if "opset 11" in words else 17
    path = tmp_path / "u.onnx"
    path.write_bytes(_tiny(nodes, inits, opset=opset).SerializeToString())
    with pytest.raises(ValueError) as e:
        fo.load(path)
    assert words in str(e.value)


def test_load_folds_constant_shape_subgraphs(tmp_path, rng):
    """Reshape whose shape is computed from Shape(x) (the symbolic batch) and constants, and
    a Pad whose pads come from a Constant + Cast chain."""
    nodes = [
        helper.make_node("Constant", [], ["pads"], value=numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int32))),
        helper.make_node("Cast", ["pads"], ["pads64"], to=TensorProto.INT64),
        helper.make_node("Pad", ["x", "pads64"], ["xp"], mode="reflect"),
        helper.make_node("Conv", ["xp", "w"], ["c"]),
        helper.make_node("Shape", ["c"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Mul", ["four", "eight"], ["f"]),
        helper.make_node("Concat", ["n1", "f"], ["target"], axis=0),
        helper.make_node("Reshape", ["c", "target"], ["y"]),
    ]
    inits = [("w", rng.standard_normal((2, 2, 3, 3)).astype(np.float32)), ("zero", np.array(0, np.int64)),
             ("axes", np.array([0], np.int64)), ("four", np.array([4], np.int64)), ("eight", np.array([8], np.int64))]
    proto = _tiny(nodes, inits, shape=["N", 2, 4, 4], out_shape=["N", 32])
    onnx.checker.check_model(proto, full_check=True)
    path = tmp_path / "f.onnx"
    path.write_bytes(proto.SerializeToString())
    loaded = fo.load(path)
    assert isinstance(loaded, nn.Sequential)
    assert [type(m).__name__ for m in loaded] == ["Conv2d", "Flatten"]
    assert loaded[0].padding_mode == "reflect"
    for n in (1, 3):
        x = _rand(rng, (n, 2, 4, 4))
        np.testing.assert_allclose(loaded(x), _ort(path, x), rtol=RTOL, atol=ATOL)


def test_load_dead_nodes_and_identity_chains(tmp_path, rng):
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Sigmoid", ["a"], ["unused"]), helper.make_node("Identity", ["r"], ["y"])]
    path = tmp_path / "d.onnx"
    path.write_bytes(_tiny(nodes).SerializeToString())
    loaded = fo.load(path)
    assert [type(m).__name__ for m in loaded] == ["ReLU"]
    x = _rand(rng, (1, 2, 4, 4))
    np.testing.assert_array_equal(loaded(x), _ort(path, x))


def test_load_no_config_metadata(tmp_path):
    path = tmp_path / "n.onnx"
    path.write_bytes(_tiny([helper.make_node("Relu", ["x"], ["y"])]).SerializeToString())
    assert fo.load(path).config == {}


LOAD_ERRORS = [
    (lambda d: fo.load(123), TypeError, "path must be a str or os.PathLike"),
    (lambda d: fo.load(b"m.onnx"), TypeError, "path must be a str or os.PathLike"),
    (lambda d: fo.load(d / "missing.onnx"), ValueError, "no such ONNX file"),
    (lambda d: fo.load(d), ValueError, "no such ONNX file"),
]


@pytest.mark.parametrize("call, exc, words", LOAD_ERRORS, ids=[w for _, _, w in LOAD_ERRORS])
def test_load_bad_arguments(call, exc, words, tmp_path):
    with pytest.raises(exc) as e:
        call(tmp_path)
    assert words in str(e.value)


def test_load_byte_flips_raise_value_error_only(tmp_path):
    """Random byte changes in a valid file: it loads (and runs) or raises ValueError,
    never another exception or a crash."""
    m = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect", rng=0), nn.BatchNorm2d(2), nn.ReLU(),
                      nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(2 * 3 * 3, 3, rng=0), nn.Softmax())
    good = tmp_path / "small.onnx"
    fo.export(m, good, (1, 1, 5, 5))
    data = good.read_bytes()
    r = np.random.default_rng(0)
    bad = tmp_path / "flipped.onnx"
    outcomes = {"ok": 0, "error": 0}
    for _ in range(400):
        e = bytearray(data)
        for _ in range(int(r.integers(1, 4))):
            e[int(r.integers(0, len(e)))] = int(r.integers(0, 256))
        bad.write_bytes(bytes(e))
        try:
            loaded = fo.load(bad)
        except ValueError:
            outcomes["error"] += 1
            continue
        try:
            loaded(np.zeros(_input_dims(bad), np.float32))
        except (ValueError, TypeError):
            pass  # a flip can change the declared input shape: fastconv's own checks answer
        outcomes["ok"] += 1
    assert outcomes["error"] > 100 and outcomes["ok"] > 10


def _input_dims(path):
    proto = onnx.ModelProto()
    proto.ParseFromString(path.read_bytes())  # no external data
    return [d.dim_value or 1 for d in proto.graph.input[0].type.tensor_type.shape.dim]


# --- command line ---------------------------------------------------------------------------

def _cli(capsys, *args):
    from fastconv.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", [".npz", ".safetensors"])
def test_cli_export_and_evaluate(fmt, tmp_path, capsys, rng):
    from fastconv import serialization

    m = _model("resnet8")
    m.config.update(dataset="mnist")
    src = serialization.save_model(m, tmp_path / f"m{fmt}")
    out = tmp_path / "m.onnx"
    code, text, err = _cli(capsys, "export", src, "--onnx", out)
    assert code == 0, err
    assert "wrote" in text and "(N, 1, 28, 28)" in text
    x = _rand(rng, (3, 1, 28, 28))
    m.eval()
    np.testing.assert_allclose(_ort(out, x), m(x), rtol=RTOL, atol=ATOL)
    assert fo.load(out).config == m.config
    # an existing file needs --force; a fixed batch size
    code, _, err = _cli(capsys, "export", src, "--onnx", out, "--batch-size", 2)
    assert code == 2 and "already exists; pass --force" in err
    code, text, _ = _cli(capsys, "export", src, "--onnx", out, "--batch-size", 2, "--force")
    assert code == 0 and "(2, 1, 28, 28)" in text
    assert [d.dim_value for d in onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim] == [2, 1, 28, 28]


CLI_ERRORS = [
    (lambda d, src: ("export", src, "--onnx", d / "m.txt"), "--onnx must name an .onnx file"),
    (lambda d, src: ("export", d / "missing.npz", "--onnx", d / "m.onnx"), "no such model file"),
    (lambda d, src: ("export", src, "--onnx", d / "m.onnx", "--opset", 5), "opset must be in [13, 22]"),
    (lambda d, src: ("export", src), "the following arguments are required: --onnx"),
    (lambda d, src: ("export", src, "--onnx", d / "m.onnx", "--batch-size", 0), "expected a positive integer"),
    (lambda d, src: ("evaluate", _write(d, b"junk"), "--data", d), "not an ONNX model"),
]


@pytest.mark.parametrize("make, words", CLI_ERRORS, ids=[w for _, w in CLI_ERRORS])
def test_cli_export_errors(make, words, tmp_path, capsys):
    from fastconv import serialization

    src = serialization.save_model(_model("lenet5"), tmp_path / "m.npz")
    code, _, err = _cli(capsys, *make(tmp_path, src))
    assert code == 2
    assert words in err


def test_cli_evaluate_onnx_matches_npz(tmp_path, capsys, mnist_dir):
    """evaluate reads an .onnx file (the dataset and normalisation from its stored config,
    or the dataset's defaults for a file without one) and reports what the .npz gives."""
    from fastconv import serialization

    m = _model("lenet5")
    src = serialization.save_model(m, tmp_path / "m.npz")
    out = tmp_path / "m.onnx"
    assert _cli(capsys, "export", src, "--onnx", out)[0] == 0
    code, from_npz, _ = _cli(capsys, "evaluate", src, "--data", mnist_dir)
    assert code == 0
    code, from_onnx, err = _cli(capsys, "evaluate", out, "--data", mnist_dir)
    assert code == 0, err
    assert from_onnx == from_npz and "test accuracy on mnist" in from_onnx
    # no metadata (as torch writes): mnist and its default normalisation
    proto = onnx.load(str(out))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(proto.SerializeToString())
    code, from_bare, err = _cli(capsys, "evaluate", bare, "--data", mnist_dir)
    assert code == 0, err
    assert from_bare == from_npz


# --- import, op by op: hand-written graphs against onnxruntime ----------------------------------

def _w(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(np.float32)


def _mk(op, inputs, output="y", **attrs):
    return helper.make_node(op, inputs, [output] if isinstance(output, str) else output, name=f"n_{op}", **attrs)


IMPORT_CASES = [
    # (id, nodes, initializers, input shape (None = batch symbol), opset, expected fastconv layer types)
    ("conv same_upper even", [_mk("Conv", ["x", "w"], auto_pad="SAME_UPPER")], [("w", _w(3, 2, 4, 4))],
     (2, 7, 6), 17, ["Conv2d"]),
    ("conv same_lower even", [_mk("Conv", ["x", "w", "b"], auto_pad="SAME_LOWER")],
     [("w", _w(3, 2, 4, 3)), ("b", _w(3))], (2, 7, 6), 17, ["ZeroPad2d", "Conv2d"]),
    ("conv same_upper stride 2", [_mk("Conv", ["x", "w"], auto_pad="SAME_UPPER", strides=[2, 2])],
     [("w", _w(3, 2, 3, 3))], (2, 8, 7), 17, None),
    ("conv valid", [_mk("Conv", ["x", "w"], auto_pad="VALID", dilations=[2, 1])], [("w", _w(3, 2, 3, 3))],
     (2, 8, 7), 11, ["Conv2d"]),
    ("conv asymmetric pads", [_mk("Conv", ["x", "w"], pads=[1, 0, 2, 1], group=2)], [("w", _w(4, 1, 3, 3))],
     (2, 6, 6), 17, ["ZeroPad2d", "Conv2d"]),
    ("conv weight from Constant", [helper.make_node("Constant", [], ["w"], value=numpy_helper.from_array(_w(2, 2, 1, 1))),
                                   _mk("Conv", ["x", "w"], kernel_shape=[1, 1])], [], (2, 3, 3), 13, ["Conv2d"]),
    ("gemm transB 0 alpha beta", [_mk("Flatten", ["x"], "f"), _mk("Gemm", ["f", "B", "C"], alpha=0.5, beta=2.0)],
     [("B", _w(18, 4)), ("C", _w(1, 4))], (2, 3, 3), 17, ["Flatten", "Linear"]),
    ("gemm no C", [_mk("Flatten", ["x"], "f"), _mk("Gemm", ["f", "B"], transB=1)], [("B", _w(4, 18))],
     (2, 3, 3), 17, ["Flatten", "Linear"]),
    ("matmul add", [_mk("Flatten", ["x"], "f"), _mk("MatMul", ["f", "B"], "m"), _mk("Add", ["c", "m"])],
     [("B", _w(18, 5)), ("c", _w(5))], (2, 3, 3), 17, ["Flatten", "Linear"]),
    ("matmul", [_mk("Flatten", ["x"], "f"), _mk("MatMul", ["f", "B"])], [("B", _w(18, 5))], (2, 3, 3), 9,
     ["Flatten", "Linear"]),
    ("batchnorm 1d", [_mk("Flatten", ["x"], "f"), _mk("BatchNormalization", ["f", "s", "b", "m", "v"], epsilon=1e-3)],
     [("s", _w(18)), ("b", _w(18)), ("m", _w(18)), ("v", np.abs(_w(18)) + 0.5)], (2, 3, 3), 15,
     ["Flatten", "BatchNorm1d"]),
    ("batchnorm 3-d", [_mk("Reshape", ["x", "shape"], "r"), _mk("BatchNormalization", ["r", "s", "b", "m", "v"])],
     [("shape", np.array([0, 2, -1], np.int64)), ("s", _w(2)), ("b", _w(2)), ("m", _w(2)), ("v", np.abs(_w(2)) + 0.5)],
     (2, 3, 3), 14, ["Flatten", "BatchNorm1d"]),
    ("leaky relu default", [_mk("LeakyRelu", ["x"])], [], (2, 3, 3), 16, ["LeakyReLU"]),
    ("elu", [_mk("Elu", ["x"], alpha=0.3)], [], (2, 3, 3), 22, ["ELU"]),
    ("softmax last axis", [_mk("Softmax", ["x"])], [], (2, 3, 3), 13, ["Softmax"]),
    ("log softmax axis 1", [_mk("LogSoftmax", ["x"], axis=1)], [], (2, 3, 3), 17, ["LogSoftmax"]),
    ("softmax opset 11 2-d", [_mk("Flatten", ["x"], "f"), _mk("Softmax", ["f"], axis=1)], [], (2, 3, 3), 11,
     ["Flatten", "Softmax"]),
    ("dropout ratio input", [_mk("Dropout", ["x", "r"])], [("r", np.array(0.3, np.float32))], (2, 3, 3), 13,
     ["Dropout"]),
    ("dropout opset 10", [_mk("Dropout", ["x"], ratio=0.2)], [], (2, 3, 3), 10, ["Dropout"]),
    ("sum of three", [_mk("Relu", ["x"], "a"), _mk("Sigmoid", ["x"], "b"), _mk("Sum", ["a", "b", "x"])], [],
     (2, 3, 3), 13, None),
    ("split input sizes", [_mk("Split", ["x", "s"], ["a", "b"], axis=1), _mk("Tanh", ["b"], "t"),
                           _mk("Concat", ["t", "a", "b"], axis=1)], [("s", np.array([1, 1], np.int64))],
     (2, 3, 3), 13, None),
    ("split num_outputs uneven", [_mk("Split", ["x"], ["a", "b", "c"], axis=2, num_outputs=3),
                                  _mk("Concat", ["c", "b", "a"], axis=2)], [], (2, 7, 3), 18, None),
    ("split attr", [_mk("Split", ["x"], ["a", "b"], axis=-1, split=[1, 2]), _mk("Add", ["a", "a"], "y")], [],
     (2, 3, 3), 11, None),
    ("global max pool", [_mk("GlobalMaxPool", ["x"])], [], (2, 5, 4), 17, ["AdaptiveMaxPool2d"]),
    ("reduce max keepdims 0", [_mk("ReduceMax", ["x"], axes=[2, 3], keepdims=0)], [], (2, 5, 4), 13,
     ["AdaptiveMaxPool2d", "Flatten"]),
    ("reduce mean axes input", [_mk("ReduceMean", ["x", "axes"])], [("axes", np.array([-1, -2], np.int64))],
     (2, 5, 4), 18, ["AdaptiveAvgPool2d"]),
    ("pad constant value", [_mk("Pad", ["x", "p", "v"])], [("p", np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64)),
                                                            ("v", np.array(1.5, np.float32))], (2, 4, 4), 13,
     ["ConstantPad2d"]),
    ("pad edge asymmetric", [_mk("Pad", ["x", "p"], mode="edge")],
     [("p", np.array([0, 0, 1, 2, 0, 0, 3, 0], np.int64))], (2, 4, 4), 17, ["ReplicationPad2d"]),
    ("pad reflect crop", [_mk("Pad", ["x", "p"], mode="reflect")],
     [("p", np.array([0, 0, -1, 2, 0, 0, 1, -1], np.int64))], (2, 4, 4), 17, None),
    ("pad wrap axes", [_mk("Pad", ["x", "p", "", "axes"], mode="wrap")],
     [("p", np.array([1, 2, 2, 0], np.int64)), ("axes", np.array([2, 3], np.int64))], (2, 4, 4), 19,
     ["CircularPad2d"]),
    ("pad opset 10", [_mk("Pad", ["x"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=2.0)], [], (2, 4, 4), 10,
     ["ConstantPad2d"]),
    ("pad into conv", [_mk("Pad", ["x", "p"], "xp", mode="edge"), _mk("Conv", ["xp", "w"])],
     [("p", np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64)), ("w", _w(2, 2, 3, 3))], (2, 5, 5), 17, ["Conv2d"]),
    ("maxpool ceil", [_mk("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)],
     [], (2, 8, 7), 17, ["MaxPool2d"]),
    ("maxpool end pads", [_mk("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2], pads=[0, 0, 1, 1])], [],
     (2, 7, 7), 12, ["MaxPool2d"]),
    ("avgpool include pad", [_mk("AveragePool", ["x"], kernel_shape=[3, 2], strides=[1, 2], pads=[1, 1, 1, 1],
                                 count_include_pad=1)], [], (2, 6, 7), 19, ["AvgPool2d"]),
    ("avgpool ceil exclude", [_mk("AveragePool", ["x"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)], [],
     (2, 7, 5), 11, ["AvgPool2d"]),
    ("flatten 3-d", [_mk("Flatten", ["x"])], [], (6, 3), 17, ["Flatten"]),
    ("reshape flatten from 2", [_mk("Reshape", ["x", "s"])], [("s", np.array([0, 0, -1], np.int64))],
     (2, 3, 3), 17, ["Flatten"]),
    ("slice crop", [_mk("Slice", ["x", "st", "en", "ax"])],
     [("st", np.array([1, 0], np.int64)), ("en", np.array([-1, 2], np.int64)), ("ax", np.array([2, 3], np.int64))],
     (2, 5, 4), 13, ["ZeroPad2d"]),
]


@pytest.mark.parametrize("case", IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_load_op(case, tmp_path, rng):
    _, nodes, inits, chw, opset, kinds = case
    proto = _tiny(nodes, inits, opset=opset, shape=["N", *chw])
    path = tmp_path / "op.onnx"  # (onnxruntime checks the file; the output's shape is left open)
    path.write_bytes(proto.SerializeToString())
    loaded = fo.load(path)
    if kinds is not None:
        assert [type(m).__name__ for m in loaded.modules()][1:] == kinds
    for n in (1, 3):
        x = _rand(rng, (n, *chw))
        got, want = loaded(x), _ort(path, x)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_import_without_onnx_in_a_fresh_interpreter(tmp_path):
    """``import fastconv`` and ``import fastconv.onnx`` work without the onnx package; the
    functions say how to install it, and the CLI's evaluate reports it in one line."""
    import subprocess

    code = (
        "import sys; sys.modules['onnx'] = None\n"
        "import fastconv, fastconv.onnx\n"
        "from fastconv.serialization import ModelFileError, load_model\n"
        "try:\n"
        "    fastconv.onnx.export(fastconv.nn.ReLU(), 'x.onnx', (1, 2))\n"
        "except ImportError as e:\n"
        "    print('export:', e)\n"
        "try:\n"
        "    load_model(sys.argv[1])\n"
        "except ModelFileError as e:\n"
        "    print('load_model:', e)\n"
    )
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    # the fastconv these tests import (source tree or installed wheel), run away from the
    # repository root (python -c puts the working folder first on sys.path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('pip install "fastconv[onnx]"') == 2, out.stdout
