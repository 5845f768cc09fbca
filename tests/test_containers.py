"""Residual and Concat containers, and the gradient flags routed through containers:
float64 central differences, which backward passes run, state-dict names (PyTorch's)."""
import numpy as np
import pytest

from fastconv import nn
from fastconv.nn import Concat, Residual
from reference import numerical_grad, numerical_grad_at


def conv(cin, cout, k, seed, **kw):
    return nn.Conv2d(cin, cout, k, rng=seed, dtype=np.float64, **kw)


def check_gradients(model, x, rng, check_input=True, max_entries=16):
    """model.backward against central differences of <model(x), g> for x and every
    trainable parameter (``max_entries`` drawn at random from each, all of small ones); frozen
    parameters' gradients must stay zero."""
    model.zero_grad()
    y = model(x)
    g = rng.standard_normal(y.shape)
    gx = model.backward(g)

    def f():
        return float(np.sum(model(x) * g))

    def check(analytic, array, name):
        if max_entries is None or array.size <= max_entries:
            np.testing.assert_allclose(analytic, numerical_grad(f, array), rtol=1e-6, atol=1e-8, err_msg=name)
        else:
            idx = rng.choice(array.size, max_entries, replace=False)
            np.testing.assert_allclose(analytic.reshape(-1)[idx], numerical_grad_at(f, array, idx),
                                       rtol=1e-6, atol=1e-8, err_msg=name)

    if check_input:
        assert gx is not None and gx.shape == x.shape
        check(gx, x, "input")
    for name, p in model.named_parameters():
        if p.requires_grad:
            check(p.grad, p.data, name)
        else:  # frozen: untouched
            assert not p.grad.any(), name
    return gx


def spy(layer):
    """Make ``layer`` count its backward calls (``layer.calls``) and remember what each
    returned (``layer.returned``)."""
    cls = type(layer)

    def backward(self, grad_output):
        result = cls.backward(self, grad_output)
        self.calls += 1
        self.returned.append(result)
        return result

    layer.__class__ = type("Spy" + cls.__name__, (cls,), {"backward": backward})
    object.__setattr__(layer, "calls", 0)
    object.__setattr__(layer, "returned", [])
    return layer


# -- Residual -------------------------------------------------------------------------------

def test_residual_identity_forward_and_gradients(rng):
    body = nn.Sequential(conv(3, 3, 3, 0, padding=1), nn.Tanh(), conv(3, 3, 3, 1, padding=1), nn.ReLU())
    res = Residual(body)
    x = rng.standard_normal((2, 3, 5, 6))
    np.testing.assert_allclose(res(x), body(x) + x, rtol=1e-14)
    check_gradients(res, x, rng)


def test_residual_projection_nested_in_sequential(rng):
    # stride-2 body and a strided 1x1 projection, between other layers
    model = nn.Sequential(
        conv(2, 3, 3, 0, padding=1), nn.Tanh(),
        Residual(nn.Sequential(conv(3, 4, 3, 1, stride=2, padding=1), nn.ReLU(), conv(4, 4, 3, 2, padding=1)),
                 nn.Sequential(conv(3, 4, 1, 3, stride=2))),
        nn.ReLU(),
        Residual(nn.Sequential(conv(4, 4, 3, 4, padding=1), nn.Sigmoid())),
        nn.Flatten(), nn.Linear(4 * 3 * 3, 3, rng=5, dtype=np.float64),
    )
    x = rng.standard_normal((2, 2, 6, 5))
    check_gradients(model, x, rng, max_entries=20)


def test_residual_output_is_its_own_array_across_steps(rng):
    # The body ends in a ReLU that keeps its output for backward: the sum must not be
    # written into it, and a held output must survive the next step.
    body = nn.Sequential(conv(2, 2, 3, 0, padding=1), nn.ReLU())
    res = Residual(body)
    x1, x2 = rng.standard_normal((2, 1, 2, 4, 4))
    g = rng.standard_normal((1, 2, 4, 4))
    y1 = res(x1)
    relu_out = body[1](body[0](x1)).copy()
    y1_values = y1.copy()
    res.zero_grad()
    gx1 = res.backward(g)
    y2 = res(x2)
    np.testing.assert_array_equal(y1, y1_values)  # still held: not reused
    assert not np.shares_memory(y2, y1)
    np.testing.assert_allclose(y1, relu_out + x1, rtol=1e-14)
    # fresh module, same weights: the same step-2 gradient
    fresh = Residual(nn.Sequential(conv(2, 2, 3, 0, padding=1), nn.ReLU()))
    fresh.zero_grad()
    fresh(x1)
    np.testing.assert_allclose(fresh.backward(g), gx1, rtol=1e-14)
    res.zero_grad()
    fresh.zero_grad()
    gx2 = res.backward(g)
    fresh(x2)
    np.testing.assert_allclose(gx2, fresh.backward(g), rtol=1e-14)
    np.testing.assert_allclose(res.body[0].weight.grad, fresh.body[0].weight.grad, rtol=1e-14)


def test_residual_steady_state_reuses_its_arrays(rng):
    res = Residual(nn.Sequential(conv(2, 2, 3, 0, padding=1), nn.ReLU()))
    x = rng.standard_normal((1, 2, 4, 4))
    g = rng.standard_normal((1, 2, 4, 4))
    ids = set()
    for _ in range(3):
        y = res(x)
        ids.add(id(y))
        del y
        res.backward(g)
    assert len(ids) == 1  # the workspace array, reused once nothing else holds it


def test_residual_shape_mismatch_names_both_shapes(rng):
    res = Residual(conv(2, 3, 3, 0))
    with pytest.raises(ValueError, match=r"\(1, 3, 3, 3\).*\(1, 2, 5, 5\)"):
        res(rng.standard_normal((1, 2, 5, 5)))
    proj = Residual(conv(2, 3, 3, 0, padding=1), conv(2, 3, 1, 1, stride=2))
    with pytest.raises(ValueError, match=r"\(1, 3, 5, 5\).*shortcut output shape \(1, 3, 3, 3\)"):
        proj(rng.standard_normal((1, 2, 5, 5)))


def test_residual_state_dict_keys_and_repr():
    model = nn.Sequential(
        Residual(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1)),
                 nn.Sequential(nn.Conv2d(1, 2, 1))),
        Residual(nn.Sequential(nn.ReLU())),
    )
    assert list(model.state_dict()) == [
        "0.body.0.weight", "0.body.0.bias", "0.body.2.weight", "0.body.2.bias",
        "0.shortcut.0.weight", "0.shortcut.0.bias",
    ]
    assert [n for n, _ in model.named_modules()] == [
        "", "0", "0.body", "0.body.0", "0.body.1", "0.body.2", "0.shortcut", "0.shortcut.0",
        "1", "1.body", "1.body.0",
    ]
    assert model[1].shortcut is None and len(model.parameters()) == 6
    text = repr(model)
    assert "(0): Residual(\n    (body): Sequential(\n      (0): Conv2d(1, 2" in text
    assert "(shortcut): Sequential(" in text
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


# -- Concat ---------------------------------------------------------------------------------

@pytest.mark.parametrize("n_branches", [2, 3])
def test_concat_forward_and_gradients(n_branches, rng):
    branches = [
        nn.Sequential(conv(3, 2, 1, 0), nn.Tanh()),
        nn.Sequential(conv(3, 3, 3, 1, padding=1), nn.ReLU(), conv(3, 1, 3, 2, padding=1)),
        nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(3, 2, 1, 3)),
    ][:n_branches]
    cat = Concat(*branches)
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(cat(x), np.concatenate([b(x) for b in branches], axis=1), rtol=1e-14)
    check_gradients(nn.Sequential(conv(2, 3, 3, 4, padding=1), cat), rng.standard_normal((2, 2, 4, 5)), rng,
                    max_entries=25)


def test_concat_other_dims_and_keys(rng):
    x = rng.standard_normal((2, 3, 4))
    a, b = nn.Linear(4, 2, rng=0, dtype=np.float64), nn.Tanh()
    cat = Concat(a, b, dim=-1)
    np.testing.assert_allclose(cat(x.reshape(6, 4)), np.concatenate([a(x.reshape(6, 4)), np.tanh(x.reshape(6, 4))], 1))
    check_gradients(cat, x.reshape(6, 4).copy(), rng)
    img = rng.standard_normal((2, 2, 3, 4))
    cat2 = Concat(nn.ReLU(), nn.Sigmoid(), dim=2)
    np.testing.assert_allclose(cat2(img), np.concatenate([np.maximum(img, 0), 1 / (1 + np.exp(-img))], 2),
                               rtol=1e-14)
    check_gradients(cat2, img, rng)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), Concat(nn.Conv2d(2, 2, 1), nn.ReLU(), nn.Conv2d(2, 1, 3)))
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.2.weight", "1.2.bias"]
    assert repr(model[1]).startswith("Concat(\n  dim=1\n  (0): Conv2d(2, 2")


def test_concat_errors(rng):
    x = rng.standard_normal((1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"branch 0 gave shape \(1, 2, 5, 5\), branch 1 gave shape \(1, 3, 3, 3\)"):
        Concat(nn.ReLU(), conv(2, 3, 3, 0))(x)
    with pytest.raises(ValueError, match="dim=4 is out of range"):
        Concat(nn.ReLU(), dim=4)(x)
    cat = Concat(nn.ReLU(), nn.Tanh())
    with pytest.raises(RuntimeError, match="before forward"):
        cat.backward(np.zeros((1, 4, 5, 5)))
    cat(x)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 4, 5, 5\)"):
        cat.backward(np.zeros((1, 3, 5, 5)))
    res = Residual(nn.ReLU())
    with pytest.raises(RuntimeError, match="before forward"):
        res.backward(x)
    res(x)
    with pytest.raises(ValueError, match=r"grad_output must have shape \(1, 2, 5, 5\)"):
        res.backward(x[:, :1])
    with pytest.raises(TypeError, match="grad_output must be a numpy.ndarray"):
        res.backward([1.0])


# -- which backward passes run ------------------------------------------------------------

def test_frozen_prefix_before_residual_stops_backward(rng):
    first = spy(conv(1, 2, 3, 0, padding=1))
    body_conv = spy(conv(2, 2, 3, 1, padding=1))
    model = nn.Sequential(first, nn.Tanh(), Residual(nn.Sequential(body_conv, nn.Tanh())),
                          nn.Flatten(), nn.Linear(2 * 4 * 4, 3, rng=2, dtype=np.float64))
    model.needs_input_grad = False
    first.requires_grad_(False)
    x = rng.standard_normal((2, 1, 4, 4))
    check_gradients(model, x, rng, check_input=False)
    assert first.calls == 0 and not first.weight.grad.any() and not first.bias.grad.any()
    # the body's first conv computes its weight gradient but no input gradient
    assert body_conv.calls >= 1 and body_conv.returned[-1] is None
    model(x)
    assert model.backward(rng.standard_normal((2, 3))) is None


def test_frozen_body_identity_shortcut(rng):
    body_conv = spy(conv(2, 2, 3, 0, padding=1))
    res = Residual(nn.Sequential(body_conv, nn.Tanh()))
    res.body.requires_grad_(False)
    head = conv(2, 2, 1, 1)
    model = nn.Sequential(conv(2, 2, 1, 2), res, head)
    x = rng.standard_normal((1, 2, 4, 4))
    # the earlier conv is trainable: the frozen body must still pass the gradient through
    check_gradients(model, x, rng)
    assert body_conv.calls >= 1 and body_conv.returned[-1] is not None
    assert not body_conv.weight.grad.any() and not body_conv.bias.grad.any()
    # nothing upstream needs anything: the frozen body is not called, backward returns None
    calls = body_conv.calls
    model[0].requires_grad_(False)
    model.needs_input_grad = False
    model.zero_grad()
    y = model(x)
    assert model.backward(np.ones_like(y)) is None
    assert body_conv.calls == calls
    assert head.weight.grad.any() and not model[0].weight.grad.any()


def test_residual_alone_without_input_gradient(rng):
    body_conv = spy(conv(2, 2, 3, 0, padding=1))
    short = spy(conv(2, 2, 1, 1))
    res = Residual(body_conv, short)
    res.needs_input_grad = False
    x = rng.standard_normal((1, 2, 4, 4))
    y = res(x)
    assert res.backward(np.ones_like(y)) is None
    assert body_conv.returned[-1] is None and short.returned[-1] is None
    assert body_conv.weight.grad.any() and short.weight.grad.any()
    short.requires_grad_(False)
    res(x)
    res.backward(np.ones_like(y))
    assert short.calls == 1  # frozen and no input gradient wanted: not called at all


def test_concat_frozen_branch_routing(rng):
    a = spy(conv(2, 2, 3, 0, padding=1))
    b = spy(conv(2, 1, 1, 1))
    b.requires_grad_(False)
    cat = Concat(a, b)
    model = nn.Sequential(conv(2, 2, 1, 2), cat)
    x = rng.standard_normal((2, 2, 3, 3))
    check_gradients(model, x, rng)
    assert b.calls >= 1 and b.returned[-1] is not None and not b.weight.grad.any()
    model[0].requires_grad_(False)
    model.needs_input_grad = False
    model.zero_grad()
    calls = b.calls
    y = model(x)
    assert model.backward(np.ones_like(y)) is None
    assert b.calls == calls and a.returned[-1] is None and a.weight.grad.any()


def test_sequential_frozen_middle_and_prefix(rng):
    # a frozen layer between trainable ones still passes the gradient back
    first, middle, last = conv(1, 2, 3, 0, padding=1), spy(conv(2, 2, 3, 1, padding=1)), conv(2, 1, 1, 2)
    model = nn.Sequential(first, nn.Tanh(), middle, nn.Tanh(), last)
    middle.requires_grad_(False)
    model.needs_input_grad = False
    check_gradients(model, rng.standard_normal((2, 1, 4, 4)), rng, check_input=False)
    assert middle.returned[-1] is not None and not middle.weight.grad.any()
    # a frozen prefix: backward stops above it and returns None
    first.requires_grad_(False)
    model.zero_grad()
    y = model(rng.standard_normal((2, 1, 4, 4)))
    calls = middle.calls
    assert model.backward(np.ones_like(y)) is None
    assert middle.calls == calls and last.weight.grad.any() and not first.weight.grad.any()
    # unfreezing re-plans
    first.requires_grad_(True)
    check_gradients(model, rng.standard_normal((2, 1, 4, 4)), rng, check_input=False)


def test_plan_follows_the_enclosing_flag(rng):
    # the same Residual inside two contexts: the plan is redone when its upstream changes
    inner = spy(conv(2, 2, 1, 0))
    inner.requires_grad_(False)
    res = Residual(inner)
    x = rng.standard_normal((1, 2, 3, 3))
    y = res(x)
    assert res.backward(np.ones_like(y)) is not None and inner.calls == 1
    res._set_upstream_needs_grad(False)
    res(x)
    assert res.backward(np.ones_like(y)) is None and inner.calls == 1
    res._set_upstream_needs_grad(True)
    res(x)
    gx = res.backward(np.ones_like(y))
    assert inner.calls == 2
    np.testing.assert_allclose(gx, 1 + inner.weight.data[:, :, 0, 0].sum(0)[None, :, None, None]
                               * np.ones((1, 2, 3, 3)), rtol=1e-14)


# -- bad constructor arguments --------------------------------------------------------------

@pytest.mark.parametrize("make,exc,words", [
    (lambda: Residual("conv"), TypeError, "Residual body must be a Module"),
    (lambda: Residual(None), TypeError, "Residual body must be a Module"),
    (lambda: Residual(nn.ReLU(), 3), TypeError, "Residual shortcut must be a Module or None"),
    (lambda: Concat(), ValueError, "Concat needs at least one branch"),
    (lambda: Concat(nn.ReLU(), np.zeros(2)), TypeError, "Concat branch 1 must be a Module"),
    (lambda: Concat(nn.ReLU(), dim=1.0), TypeError, "dim must be an int"),
    (lambda: Concat(nn.ReLU(), dim=True), TypeError, "dim must be an int"),
    (lambda: Concat(nn.ReLU(), dim="1"), TypeError, "dim must be an int"),
])
def test_constructor_errors(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)


# -- optional PyTorch cross-check -----------------------------------------------------------

def test_residual_matches_torch(rng):
    torch = pytest.importorskip("torch")

    class TorchResidual(torch.nn.Module):
        def __init__(self, body, shortcut=None):
            super().__init__()
            self.body = body
            if shortcut is not None:
                self.shortcut = shortcut
            else:
                self.shortcut = None

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    ours = nn.Sequential(
        Residual(nn.Sequential(conv(2, 3, 3, 0, stride=2, padding=1), nn.ReLU(), conv(3, 3, 3, 1, padding=1)),
                 nn.Sequential(conv(2, 3, 1, 2, stride=2))),
        nn.ReLU(), Residual(nn.Sequential(conv(3, 3, 3, 3, padding=1))),
    )
    T = torch.nn
    theirs = T.Sequential(
        TorchResidual(T.Sequential(T.Conv2d(2, 3, 3, 2, 1), T.ReLU(), T.Conv2d(3, 3, 3, 1, 1)),
                      T.Sequential(T.Conv2d(2, 3, 1, 2))),
        T.ReLU(), TorchResidual(T.Sequential(T.Conv2d(3, 3, 3, 1, 1))),
    ).double()
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = rng.standard_normal((2, 2, 7, 6))
    g = rng.standard_normal((2, 3, 4, 3))
    ours.zero_grad()
    y = ours(x)
    gx = ours.backward(g)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = theirs(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)
