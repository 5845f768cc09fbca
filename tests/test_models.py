"""The ready-made models: structure, PyTorch key layout, gradients, against PyTorch (optional)."""
import numpy as np
import pytest

from fastconv import models, nn
from fastconv.models import build_model, resnet8, resnet20, vgg_small

from reference import numerical_grad_at


def _count(model):
    return sum(p.data.size for p in model.parameters())


def _conv_bn_params(cin, cout, k):
    return cin * cout * k * k + 2 * cout


def test_resnet8_structure_and_keys():
    m = resnet8(rng=0)
    # stem 1->16, block 16->16 (2 convs), 16->32 (2 convs + 1x1 projection), 32->64 (same), fc
    want = (_conv_bn_params(1, 16, 3) + 2 * _conv_bn_params(16, 16, 3)
            + _conv_bn_params(16, 32, 3) + _conv_bn_params(32, 32, 3) + _conv_bn_params(16, 32, 1)
            + _conv_bn_params(32, 64, 3) + _conv_bn_params(64, 64, 3) + _conv_bn_params(32, 64, 1)
            + 64 * 10 + 10)
    assert _count(m) == want
    keys = list(m.state_dict())
    assert keys[:6] == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked"]
    assert "3.0.0.body.0.weight" in keys and "3.0.0.shortcut.0.weight" not in keys
    assert "4.0.0.shortcut.0.weight" in keys and "4.0.0.shortcut.1.running_var" in keys
    assert keys[-2:] == ["8.weight", "8.bias"]
    assert m.config == {"model": "resnet8", "in_channels": 1, "num_classes": 10}
    y = m(np.zeros((2, 1, 28, 28), np.float32))
    assert y.shape == (2, 10) and y.dtype == np.float32
    r20 = resnet20(in_channels=3, num_classes=5, rng=0)
    assert r20(np.zeros((1, 3, 32, 32), np.float32)).shape == (1, 5)
    assert sum(isinstance(x, nn.Conv2d) for x in r20.modules()) == 19 + 2  # 6n+1 convs + 2 projections
    v = vgg_small(rng=0)
    assert v(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_build_model_from_config_roundtrip(name):
    m = models.MODELS[name](rng=1) if name != "lenet5" else models.lenet5(rng=1)
    rebuilt = build_model(dict(m.config, dataset="mnist"), rng=2)
    assert list(rebuilt.state_dict()) == list(m.state_dict())
    assert rebuilt.config["dataset"] == "mnist"
    rebuilt.load_state_dict(m.state_dict())
    m.eval(), rebuilt.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(rebuilt(x), m(x))


@pytest.mark.parametrize("bad,err,words", [
    (dict(in_channels=2), ValueError, "in_channels must be one of 1, 3, got 2"),
    (dict(num_classes=0), ValueError, "num_classes must be a positive int"),
    (dict(num_classes=2.5), ValueError, "num_classes must be a positive int"),
])
def test_model_arguments_are_checked(bad, err, words):
    for builder in (resnet8, resnet20, vgg_small):
        with pytest.raises(err, match=words.replace("[", "\\[").replace("]", "\\]")):
            builder(**bad)
    with pytest.raises(ValueError, match="config must name a model"):
        build_model({"model": "alexnet"})


def test_resnet8_gradient_by_finite_differences():
    rng = np.random.default_rng(3)
    m = resnet8(rng=0, dtype=np.float64)
    m.needs_input_grad = True
    x = rng.standard_normal((3, 1, 12, 12))
    labels = np.array([1, 5, 9])
    loss = nn.CrossEntropyLoss()
    m.zero_grad()
    loss(m(x), labels)
    gx = m.backward(loss.backward())
    snapshot = {k: v.copy() for k, v in m.state_dict().items()}

    def f():
        # the training-mode forward updates running statistics; they don't enter the loss
        value = nn.CrossEntropyLoss()(m(x), labels)
        return value

    idx = rng.choice(x.size, 10, replace=False)
    np.testing.assert_allclose(gx.reshape(-1)[idx], numerical_grad_at(f, x, idx), rtol=1e-5, atol=1e-8)
    for name, p in m.named_parameters():
        idx = rng.choice(p.data.size, min(4, p.data.size), replace=False)
        np.testing.assert_allclose(p.grad.reshape(-1)[idx], numerical_grad_at(f, p.data, idx),
                                   rtol=1e-5, atol=1e-8, err_msg=name)
    assert snapshot.keys() == m.state_dict().keys()


@pytest.mark.parametrize("name", ["resnet8", "vgg_small"])
def test_against_pytorch_with_copied_weights(name):
    torch = pytest.importorskip("torch")
    from torch_models import from_fastconv

    rng = np.random.default_rng(0)
    m = models.MODELS[name](rng=0, dtype=np.float64)
    m.needs_input_grad = True
    tm = from_fastconv(m, name, torch.float64)
    x = rng.standard_normal((4, 1, 28, 28))
    labels = rng.integers(0, 10, 4)
    if name == "vgg_small":  # dropout masks differ between the libraries: compare in eval too
        m[-2].p = 0.0
        tm[-2].p = 0.0
    loss = nn.CrossEntropyLoss()
    value = loss(m(x), labels)
    gx = m.backward(loss.backward())
    tx = torch.from_numpy(x).requires_grad_()
    tloss = torch.nn.functional.cross_entropy(tm(tx), torch.from_numpy(labels))
    tloss.backward()
    assert value == pytest.approx(tloss.item(), rel=1e-10)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-8, atol=1e-12)
    tgrads = dict(tm.named_parameters())
    for k, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, tgrads[k].grad.numpy(), rtol=1e-7, atol=1e-11, err_msg=k)
    tstate = tm.state_dict()
    for k, v in m.state_dict().items():  # running statistics after one training step
        np.testing.assert_allclose(v, tstate[k].numpy(), rtol=1e-10, atol=1e-14, err_msg=k)
    m.eval(), tm.eval()
    with torch.no_grad():
        np.testing.assert_allclose(m(x), tm(torch.from_numpy(x)).numpy(), rtol=1e-9, atol=1e-12)
