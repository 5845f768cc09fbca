"""Freezing (requires_grad), input-gradient routing, buffers in the state dict, strided labels."""
import numpy as np
import pytest

from fastconv import nn, optim
from fastconv.models import lenet5
from fastconv.training import freeze


def _step_grads(model, x, labels):
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    loss(model(x), labels)
    return model.backward(loss.backward())


def test_parameter_requires_grad_flag():
    p = nn.Parameter(np.zeros(3))
    assert p.requires_grad
    p.requires_grad = False
    assert not p.requires_grad and "requires_grad=False" in repr(p)
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        p.requires_grad = 1
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        nn.Parameter(np.zeros(3), requires_grad="yes")
    m = lenet5(rng=0)
    assert m.requires_grad_(False) is m
    assert not any(q.requires_grad for q in m.parameters())
    m.requires_grad_()
    assert all(q.requires_grad for q in m.parameters())
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        m.requires_grad_(None)
    with pytest.raises(TypeError, match="needs_input_grad must be a bool"):
        m.needs_input_grad = "no"


def test_frozen_convolutions_get_no_gradient_and_the_rest_is_unchanged(rng):
    x = rng.standard_normal((4, 1, 28, 28))
    labels = np.array([1, 2, 3, 4])
    full = lenet5(rng=0, dtype=np.float64)
    _step_grads(full, x, labels)
    want = {k: p.grad.copy() for k, p in full.named_parameters()}

    model = lenet5(rng=0, dtype=np.float64)
    frozen = freeze(model, ["0", "3"])
    assert frozen == ["0.weight", "0.bias", "3.weight", "3.bias"]
    # the first conv's backward has nothing to do (nothing upstream, frozen): never called
    model[0].backward = lambda g: pytest.fail("frozen first layer's backward was called")
    assert _step_grads(model, x, labels) is None
    for k, p in model.named_parameters():
        if k in frozen:
            assert not p.grad.any(), k
        else:
            np.testing.assert_allclose(p.grad, want[k], rtol=1e-12, atol=1e-15, err_msg=k)


def test_frozen_middle_layer_still_passes_its_input_gradient(rng):
    x = rng.standard_normal((3, 5))
    model = nn.Sequential(nn.Linear(5, 4, rng=1, dtype=np.float64), nn.Tanh(),
                          nn.Linear(4, 3, rng=2, dtype=np.float64))
    g = rng.standard_normal((3, 3))
    model(x)
    gx_full = model.backward(g)
    w0 = model[0].weight.grad.copy()
    model.zero_grad()
    model[2].requires_grad_(False)
    model(x)
    gx = model.backward(g)
    np.testing.assert_allclose(gx, gx_full, rtol=1e-13)
    np.testing.assert_allclose(model[0].weight.grad, w0, rtol=1e-13)  # reached through the frozen layer
    assert not model[2].weight.grad.any() and not model[2].bias.grad.any()
    # nothing wants the input gradient: the first Linear computes only its weight gradient
    model.needs_input_grad = False
    model.zero_grad()
    model(x)
    assert model.backward(g) is None
    np.testing.assert_allclose(model[0].weight.grad, w0, rtol=1e-13)


def test_optimizers_skip_frozen_parameters(rng):
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.Adam(ps, lr=0.01)):
        model = nn.Sequential(nn.Linear(3, 2, rng=0), nn.Linear(2, 2, rng=1))
        opt = make(model.parameters())
        for p in model.parameters():
            p.grad[...] = rng.standard_normal(p.shape)
        model[0].weight.requires_grad = False
        before = [p.data.copy() for p in model.parameters()]
        opt.step()
        after = [p.data for p in model.parameters()]
        np.testing.assert_array_equal(after[0], before[0])
        assert all(not np.array_equal(a, b) for a, b in zip(after[1:], before[1:]))
        model[0].weight.requires_grad = True  # the plan is rebuilt: updated again
        opt.step()
        assert not np.array_equal(model[0].weight.data, before[0])


def test_buffers_are_state_but_not_parameters():
    class WithStats(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(np.ones(2))
            self.register_buffer("running_mean", np.zeros(2))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
            self.register_buffer("absent", None)

    m = nn.Sequential(WithStats(), nn.Linear(2, 2, rng=0, dtype=np.float64))
    assert list(m.state_dict()) == ["0.weight", "0.running_mean", "0.num_batches_tracked",
                                    "1.weight", "1.bias"]
    assert [n for n, _ in m.named_buffers()] == ["0.running_mean", "0.num_batches_tracked"]
    assert len(m.parameters()) == 3
    m[0].running_mean = np.array([1.0, 2.0])  # assignment replaces the buffer
    sd = m.state_dict()
    np.testing.assert_array_equal(sd["0.running_mean"], [1.0, 2.0])
    sd["0.num_batches_tracked"] = np.array(7)
    fresh = nn.Sequential(WithStats(), nn.Linear(2, 2, rng=5, dtype=np.float64))
    fresh.load_state_dict(sd)
    assert int(fresh[0].num_batches_tracked) == 7
    np.testing.assert_array_equal(fresh[0].running_mean, [1.0, 2.0])
    with pytest.raises(KeyError, match="missing keys \\['0.running_mean'\\]"):
        fresh.load_state_dict({k: v for k, v in sd.items() if k != "0.running_mean"})
    bad = dict(sd, **{"1.bias": np.zeros(3)})
    with pytest.raises(ValueError, match="1.bias"):
        fresh.load_state_dict(bad)
    assert int(fresh[0].num_batches_tracked) == 7  # a failed load changes nothing
    fresh.astype(np.float32)
    assert fresh[0].running_mean.dtype == np.float32
    assert fresh[0].num_batches_tracked.dtype == np.int64
    with pytest.raises(KeyError, match="already exists"):
        m[0].register_buffer("weight", np.zeros(1))
    with pytest.raises(TypeError, match="must be a numpy.ndarray or None"):
        m[0].register_buffer("other", [1, 2])


def test_freeze_prefixes_match_whole_names():
    m = nn.Sequential(*[nn.Linear(2, 2, rng=i) for i in range(11)])
    assert freeze(m, ["1"]) == ["1.weight", "1.bias"]  # not 10.weight
    assert m[10].weight.requires_grad
    with pytest.raises(ValueError, match="matches no parameter"):
        freeze(m, ["12"])


def test_cross_entropy_takes_strided_and_read_only_labels(rng):
    logits = rng.standard_normal((8, 5))
    labels = rng.integers(0, 5, 16)
    strided = labels[::2]
    loss = nn.CrossEntropyLoss()
    want = loss(logits, np.ascontiguousarray(strided))
    want_grad = loss.backward().copy()
    assert loss(logits, strided) == want
    np.testing.assert_array_equal(loss.backward(), want_grad)
    ro = np.ascontiguousarray(strided).astype(np.int32)
    ro.flags.writeable = False
    assert loss(logits, ro) == want
    assert loss(logits[::-1], strided[::-1]) == pytest.approx(want, rel=1e-12)
