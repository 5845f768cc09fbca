"""Optimizers (SGD with dampening, Adam with AMSGrad, AdamW), parameter groups, state_dict,
and nn.utils.clip_grad_norm_: against float64 NumPy loops of PyTorch's update rules (and
PyTorch itself when installed)."""
import math

import numpy as np
import pytest

import fastconv
from fastconv import nn, optim
from fastconv.nn.utils import clip_grad_norm_
from reference import adam_torch_ref, sgd_torch_ref, tol

SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "wd": dict(lr=0.1, weight_decay=0.05),
    "momentum": dict(lr=0.05, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
    "nesterov": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.02),
}
ADAM_CONFIGS = {
    "adam": (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99)), False),
    "adam-wd": (optim.Adam, dict(lr=0.01, weight_decay=0.1), False),
    "adam-amsgrad": (optim.Adam, dict(lr=0.02, betas=(0.7, 0.9), weight_decay=0.05, amsgrad=True), False),
    "adamw": (optim.AdamW, dict(lr=0.01), True),  # default weight_decay 1e-2
    "adamw-wd": (optim.AdamW, dict(lr=0.05, betas=(0.85, 0.95), weight_decay=0.3), True),
    "adamw-amsgrad": (optim.AdamW, dict(lr=0.02, weight_decay=0.1, amsgrad=True), True),
}


def _make(name, params):
    if name in SGD_CONFIGS:
        return optim.SGD(params, **SGD_CONFIGS[name])
    cls, kwargs, _ = ADAM_CONFIGS[name]
    return cls(params, **kwargs)


def _reference(name, p0, grads):
    if name in SGD_CONFIGS:
        return sgd_torch_ref(p0, grads, **SGD_CONFIGS[name])[0]
    cls, kwargs, decoupled = ADAM_CONFIGS[name]
    kwargs = dict(kwargs)
    if cls is optim.AdamW:
        kwargs.setdefault("weight_decay", 1e-2)
    return adam_torch_ref(p0, grads, decoupled=decoupled, **kwargs)[0]


def _strided(values):
    """A parameter whose data and grad are strided views: it takes the NumPy rule."""
    p = nn.Parameter(values)
    p.data = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), values.dtype)[..., ::2]
    p.data[...] = values
    p.grad = np.zeros_like(p.data.base)[..., ::2]
    return p


ALL = list(SGD_CONFIGS) + list(ADAM_CONFIGS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["compiled", "numpy"])
@pytest.mark.parametrize("name", ALL)
def test_update_matches_torch_rule(name, path, dtype, rng):
    p0 = rng.standard_normal((5, 7)).astype(dtype)
    p = nn.Parameter(p0) if path == "compiled" else _strided(p0)
    opt = _make(name, [p])
    grads = []
    for _ in range(6):
        p.grad[...] = rng.standard_normal(p.shape)
        grads.append(p.grad.astype(np.float64))
        opt.step()
    assert p.data.dtype == dtype
    np.testing.assert_allclose(p.data, _reference(name, p0, grads), **tol(dtype))


def test_adamw_differs_from_adam_with_l2():
    # decoupled vs coupled weight decay are different rules: a parameter with a large
    # value and a small gradient moves by ~lr*wd*p under AdamW but by ~lr under Adam+L2
    p, q = nn.Parameter(np.array([10.0])), nn.Parameter(np.array([10.0]))
    a, w = optim.Adam([p], lr=0.01, weight_decay=0.1), optim.AdamW([q], lr=0.01, weight_decay=0.1)
    p.grad[...] = q.grad[...] = 1e-3
    a.step()
    w.step()
    # first step: m_hat / sqrt(v_hat) = g / |g|, so the Adam step is lr * g / (|g| + eps)
    np.testing.assert_allclose(q.data, 10.0 * (1 - 0.01 * 0.1) - 0.01 * 1e-3 / (1e-3 + 1e-8), rtol=1e-12)
    g = 1e-3 + 0.1 * 10.0  # Adam: the L2 term dominates the gradient
    np.testing.assert_allclose(p.data, 10.0 - 0.01 * g / (g + 1e-8), rtol=1e-12)


def test_amsgrad_uses_running_max():
    # a large gradient, then small ones: AMSGrad's denominator keeps the large v
    p, q = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    plain, ams = optim.Adam([p], lr=0.1, betas=(0.0, 0.5)), optim.Adam([q], lr=0.1, betas=(0.0, 0.5), amsgrad=True)
    grads = [10.0, 0.1, 0.1, 0.1]
    for g in grads:
        p.grad[...] = q.grad[...] = g
        plain.step()
        ams.step()
    ref_plain = adam_torch_ref([0.0], [[g] for g in grads], lr=0.1, betas=(0.0, 0.5))[0]
    ref_ams, _, v, vmax = adam_torch_ref([0.0], [[g] for g in grads], lr=0.1, betas=(0.0, 0.5), amsgrad=True)
    np.testing.assert_allclose(p.data, ref_plain, rtol=1e-12)
    np.testing.assert_allclose(q.data, ref_ams, rtol=1e-12)
    assert not np.allclose(p.data, q.data) and vmax[0] > v[0]
    np.testing.assert_allclose(ams.state[q]["max_exp_avg_sq"], vmax, rtol=1e-12)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("name", ["dampening", "nesterov", "adam-amsgrad", "adamw-wd"])
def test_mixed_parameter_list_matches_reference(name, threads, rng):
    # sizes above the compiled loop's parallel threshold, odd, empty; two dtypes; a
    # strided one on the NumPy path
    shapes = [((151, 97), np.float32), ((3,), np.float64), ((0, 4), np.float32),
              ((20011,), np.float32), ((7, 5), np.float64)]
    params = [nn.Parameter(rng.standard_normal(s).astype(d)) for s, d in shapes]
    params.append(_strided(rng.standard_normal((4, 3))))
    start = [p.data.copy() for p in params]
    history = [[] for _ in params]
    opt = _make(name, params)
    for _ in range(3):
        for p, h in zip(params, history):
            p.grad[...] = rng.standard_normal(p.shape)
            h.append(p.grad.astype(np.float64))
        opt.step()
    for i, (p, p0, h) in enumerate(zip(params, start, history)):
        np.testing.assert_allclose(p.data, _reference(name, p0, h), **tol(p.dtype), err_msg=f"params[{i}]")


@pytest.mark.parametrize("name", ["dampening", "adam-amsgrad", "adamw-wd"])
def test_update_does_not_depend_on_thread_count(name, rng):
    data = [rng.standard_normal(n).astype(np.float32) for n in (30001, 17, 40000)]
    grads = [[rng.standard_normal(d.shape).astype(np.float32) for d in data] for _ in range(3)]
    results = []
    for n_threads in (1, 2, 3):
        fastconv.set_num_threads(n_threads)
        try:
            params = [nn.Parameter(d) for d in data]
            opt = _make(name, params)
            for step in grads:
                for p, g in zip(params, step):
                    p.grad[...] = g
                opt.step()
        finally:
            fastconv.set_num_threads(None)
        results.append(np.concatenate([p.data for p in params]))
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("name", ["momentum", "adam-wd", "adamw"])
def test_param_groups_use_their_own_hyper_parameters(name, rng):
    a0, b0 = rng.standard_normal(6), rng.standard_normal((2, 3)).astype(np.float32)
    a, b = nn.Parameter(a0), nn.Parameter(b0)
    cls = optim.SGD if name in SGD_CONFIGS else ADAM_CONFIGS[name][0]
    kwargs = dict(SGD_CONFIGS[name]) if name in SGD_CONFIGS else dict(ADAM_CONFIGS[name][1])
    opt = cls([{"params": [a]}, {"params": b, "lr": 0.3, "weight_decay": 0.2}], **kwargs)
    assert [g["params"] for g in opt.param_groups] == [[a], [b]]
    assert opt.param_groups[0]["lr"] == kwargs["lr"] and opt.param_groups[1]["lr"] == 0.3
    assert opt.param_groups[1]["weight_decay"] == 0.2
    ga, gb = [], []
    for _ in range(4):
        a.grad[...] = rng.standard_normal(a.shape)
        b.grad[...] = rng.standard_normal(b.shape)
        ga.append(a.grad.copy())
        gb.append(b.grad.astype(np.float64))
        opt.step()
    group_b = dict(kwargs, lr=0.3, weight_decay=0.2)
    if name in SGD_CONFIGS:
        ref_a, ref_b = sgd_torch_ref(a0, ga, **kwargs)[0], sgd_torch_ref(b0, gb, **group_b)[0]
    else:
        dec = ADAM_CONFIGS[name][2]
        kwargs.setdefault("weight_decay", 1e-2 if dec else 0.0)
        ref_a = adam_torch_ref(a0, ga, decoupled=dec, **kwargs)[0]
        ref_b = adam_torch_ref(b0, gb, decoupled=dec, **group_b)[0]
    np.testing.assert_allclose(a.data, ref_a, **tol(np.float64))
    np.testing.assert_allclose(b.data, ref_b, **tol(np.float32))


def test_group_hyper_parameters_are_read_every_step(rng):
    # what the schedulers rely on: group["lr"] (and momentum) written between steps
    p0 = rng.standard_normal(5)
    p = nn.Parameter(p0)
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    lrs, grads = [0.1, 0.02, 0.3], []
    for lr in lrs:
        opt.param_groups[0]["lr"] = lr
        p.grad[...] = rng.standard_normal(5)
        grads.append(p.grad.copy())
        opt.step()
    # PyTorch's rule with a running buffer and the lr of each step
    ref, buf = p0.copy(), None
    for lr, g in zip(lrs, grads):
        buf = g.copy() if buf is None else 0.5 * buf + g
        ref = ref - lr * buf
    np.testing.assert_allclose(p.data, ref, rtol=1e-12)


def test_lr_property_is_the_first_group():
    a, b = nn.Parameter(np.zeros(2)), nn.Parameter(np.zeros(2))
    opt = optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.01)
    assert opt.lr == 0.01
    opt.lr = 0.02
    assert opt.param_groups[0]["lr"] == 0.02 and opt.param_groups[1]["lr"] == 0.5
    with pytest.raises(ValueError, match="lr must be a finite number"):
        opt.lr = -1.0
    assert opt.params == [a, b]
    assert opt.defaults["lr"] == 0.01 and opt.defaults["betas"] == (0.9, 0.999)


def test_add_param_group(rng):
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": [b], "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9
    b.grad[...] = 1.0
    opt.step()
    np.testing.assert_allclose(b.data, 1 - 0.01)
    np.testing.assert_array_equal(a.data, 1.0)  # zero gradient
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("name", ["nesterov", "adam-amsgrad", "adamw"])
def test_frozen_parameters_are_skipped_and_resume_fresh(name, rng):
    # PyTorch skips parameters without a gradient: no update, no state; a parameter
    # unfrozen later starts its own step count (bias correction, first momentum step)
    live0, frozen0 = rng.standard_normal(4), rng.standard_normal(3)
    live, frozen = nn.Parameter(live0), nn.Parameter(frozen0, requires_grad=False)
    opt = _make(name, [live, frozen])
    g_live = []
    for _ in range(3):
        live.grad[...] = rng.standard_normal(4)
        frozen.grad[...] = rng.standard_normal(3)  # ignored
        g_live.append(live.grad.copy())
        opt.step()
    np.testing.assert_array_equal(frozen.data, frozen0)
    assert frozen not in opt.state
    frozen.requires_grad = True
    g_frozen = []
    for _ in range(2):
        live.grad[...] = rng.standard_normal(4)
        frozen.grad[...] = rng.standard_normal(3)
        g_live.append(live.grad.copy())
        g_frozen.append(frozen.grad.copy())
        opt.step()
    np.testing.assert_allclose(live.data, _reference(name, live0, g_live), rtol=1e-10)
    np.testing.assert_allclose(frozen.data, _reference(name, frozen0, g_frozen), rtol=1e-10)
    if name != "nesterov":
        assert opt.state[live]["step"] == 5 and opt.state[frozen]["step"] == 2


def _param_set(rng):
    shapes = [((9, 5), np.float32), ((20011,), np.float32), ((4,), np.float64), ((3, 3), np.float64)]
    params = [nn.Parameter(rng.standard_normal(s).astype(d)) for s, d in shapes]
    params.append(_strided(rng.standard_normal((2, 3)).astype(np.float32)))
    return params


def _clone(params):
    out = []
    for p in params:
        q = nn.Parameter(p.data)
        if not p.data.flags.c_contiguous:
            q = _strided(np.ascontiguousarray(p.data))
        out.append(q)
    return out


ROUND_TRIP = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "nesterov": lambda ps: optim.SGD([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01}], lr=0.05,
                                     momentum=0.9, nesterov=True, weight_decay=0.01),
    "dampening": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, dampening=0.5),
    "adam": lambda ps: optim.Adam([{"params": ps[:3]}, {"params": ps[3:], "betas": (0.5, 0.9)}],
                                  lr=0.01, weight_decay=0.1),
    "amsgrad": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01, weight_decay=0.2),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_state_dict_round_trip_resumes_bit_identically(name, rng):
    params = _param_set(rng)
    grads = [[rng.standard_normal(p.shape).astype(p.dtype) for p in params] for _ in range(6)]

    def run(ps, opt, steps):
        for step in steps:
            for p, g in zip(ps, step):
                p.grad[...] = g
            opt.step()

    opt = ROUND_TRIP[name](params)
    run(params, opt, grads[:3])
    saved = opt.state_dict()
    resumed_params = _clone(params)
    run(params, opt, grads[3:])  # the uninterrupted run

    fresh = ROUND_TRIP[name](resumed_params)
    fresh.load_state_dict(saved)
    run(resumed_params, fresh, grads[3:])
    for i, (p, q) in enumerate(zip(params, resumed_params)):
        np.testing.assert_array_equal(p.data, q.data, err_msg=f"params[{i}]")
    # and the saved dict was a copy: running on did not change it
    again = ROUND_TRIP[name](_clone(resumed_params))
    again.load_state_dict(saved)
    for k, st in saved["state"].items():
        for key, v in st.items():
            if isinstance(v, np.ndarray):
                assert not np.shares_memory(v, again.state[again.params[k]][key])


def test_state_dict_layout_is_torchs(rng):
    a, b, c = (nn.Parameter(rng.standard_normal(s)) for s in [(2,), (3,), (1, 2)])
    opt = optim.Adam([{"params": [a, b]}, {"params": [c], "lr": 0.5}], lr=0.01)
    assert opt.state_dict()["state"] == {}
    a.grad[...] = 1.0
    c.requires_grad = False
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"] == [
        {"lr": 0.01, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
         "decoupled_weight_decay": False, "params": [0, 1]},
        {"lr": 0.5, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False,
         "decoupled_weight_decay": False, "params": [2]},
    ]
    assert sorted(sd["state"]) == [0, 1]  # c is frozen: no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"} and sd["state"][0]["step"] == 1
    np.testing.assert_allclose(sd["state"][0]["exp_avg"], 0.1)
    sd["state"][0]["exp_avg"][...] = 7.0  # a copy
    assert opt.state[a]["exp_avg"][0] != 7.0
    sgd = optim.SGD([a], lr=0.1)
    sgd.step()
    assert sgd.state_dict()["state"] == {0: {"momentum_buffer": None}}


def test_load_state_dict_checks_before_changing(rng):
    def fresh():
        ps = [nn.Parameter(np.zeros((2, 3))), nn.Parameter(np.zeros(4))]
        opt = optim.Adam(ps, lr=0.01)
        for p in ps:
            p.grad[...] = 1.0
        opt.step()
        return opt

    opt = fresh()
    good = opt.state_dict()
    cases = []
    sd = fresh().state_dict()
    sd["state"][1]["exp_avg"] = np.zeros(5)
    cases.append((sd, "has shape (5,), the parameter has shape (4,)"))
    sd = fresh().state_dict()
    sd["param_groups"].append(dict(sd["param_groups"][0], params=[9]))
    cases.append((sd, "2 parameter groups, the optimizer has 1"))
    sd = fresh().state_dict()
    sd["param_groups"][0]["params"] = [0]
    cases.append((sd, "has 1 parameters, the optimizer's group 0 has 2"))
    sd = fresh().state_dict()
    sd["state"][7] = sd["state"].pop(1)
    cases.append((sd, "entry for parameter 7"))
    sd = fresh().state_dict()
    del sd["state"][0]["exp_avg_sq"]
    cases.append((sd, "expected ['exp_avg', 'exp_avg_sq', 'step']"))
    sd = fresh().state_dict()
    sd["param_groups"][0]["lr"] = -1.0
    cases.append((sd, "state_dict['param_groups'][0]['lr'] must be a finite number"))
    sd = fresh().state_dict()
    sd["state"][0]["step"] = 1.5
    cases.append((sd, "['step'] must be a non-negative int"))
    sgd = optim.SGD([nn.Parameter(np.zeros((2, 3))), nn.Parameter(np.zeros(4))], lr=0.1, momentum=0.9)
    sgd.params[0].grad[...] = 1
    sgd.step()
    cases.append((sgd.state_dict(), "lacks the hyper-parameters ['amsgrad', 'betas'"))  # SGD's into Adam
    for sd, words in cases:
        before = {k: v.copy() for k, v in opt.state[opt.params[1]].items() if isinstance(v, np.ndarray)}
        with pytest.raises(ValueError) as e:
            opt.load_state_dict(sd)
        assert words in str(e.value)
        for k, v in before.items():
            np.testing.assert_array_equal(opt.state[opt.params[1]][k], v)
    assert opt.param_groups[0]["lr"] == 0.01
    opt.load_state_dict(good)
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        opt.load_state_dict([1])
    with pytest.raises(ValueError, match="must have a 'state' entry"):
        opt.load_state_dict({"param_groups": []})


def test_scheduler_keys_survive_the_optimizer_state_dict():
    p = nn.Parameter(np.zeros(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    optim.lr_scheduler.StepLR(opt, 2)
    sd = opt.state_dict()
    assert sd["param_groups"][0]["initial_lr"] == 0.1
    other = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.5, momentum=0.9)
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] == 0.1 and other.param_groups[0]["initial_lr"] == 0.1


# --------------------------------------------------------------------------- torch
def _torch_pair(rng, shape=(4, 5)):
    p0 = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(5)]
    return p0, grads


TORCH_CASES = [
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.25, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), amsgrad=True)),
]


@pytest.mark.parametrize("cls,kwargs", TORCH_CASES)
def test_matches_torch(cls, kwargs, rng):
    torch = pytest.importorskip("torch")
    p0, grads = _torch_pair(rng)
    t = torch.nn.Parameter(torch.tensor(p0))
    topt = getattr(torch.optim, cls)([t], **kwargs)
    p = nn.Parameter(p0)
    opt = getattr(optim, cls)([p], **kwargs)
    for g in grads:
        t.grad = torch.tensor(g)
        topt.step()
        p.grad[...] = g
        opt.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)
    tstate = topt.state_dict()["state"][0]
    for key, v in opt.state_dict()["state"][0].items():
        ref = tstate[key]
        np.testing.assert_allclose(np.asarray(v, np.float64), ref.numpy() if hasattr(ref, "numpy") else ref,
                                   rtol=1e-12, atol=1e-14, err_msg=key)


# --------------------------------------------------------------------------- clip
def _grads(rng, frozen=False):
    ps = [nn.Parameter(rng.standard_normal(s).astype(d)) for s, d in
          [((3, 4), np.float32), ((5,), np.float64), ((0,), np.float32)]]
    for p in ps:
        p.grad[...] = rng.standard_normal(p.shape) * 3
    if frozen:
        extra = nn.Parameter(np.zeros(2), requires_grad=False)
        extra.grad[...] = 1e6  # must be ignored
        ps.append(extra)
    return ps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0, "inf"])
def test_clip_grad_norm_total_and_scaling(norm_type, rng):
    ps = _grads(rng, frozen=True)
    before = [p.grad.astype(np.float64) for p in ps]
    flat = np.concatenate([g.ravel() for g in before[:3]])
    order = math.inf if norm_type == "inf" else norm_type
    expected = np.linalg.norm(flat, ord=order) if order in (1.0, 2.0, math.inf) else (np.abs(flat) ** order).sum() ** (1 / order)
    max_norm = expected / 4
    total = clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, expected, rtol=1e-12)
    coef = max_norm / (expected + 1e-6)
    for p, b in zip(ps[:3], before):
        np.testing.assert_allclose(p.grad, b * coef, **tol(p.dtype))
    np.testing.assert_array_equal(ps[3].grad, 1e6)  # frozen: untouched
    after = np.concatenate([p.grad.astype(np.float64).ravel() for p in ps[:3]])
    np.testing.assert_allclose(np.linalg.norm(after, ord=order) if order in (1.0, 2.0, math.inf)
                               else (np.abs(after) ** order).sum() ** (1 / order), max_norm, rtol=1e-5)


def test_clip_grad_norm_leaves_small_gradients_alone(rng):
    ps = _grads(rng)
    before = [p.grad.copy() for p in ps]
    total = clip_grad_norm_(iter(ps), 1e3)
    np.testing.assert_allclose(total, np.sqrt(sum((b.astype(np.float64) ** 2).sum() for b in before)), rtol=1e-12)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.grad, b)
    single = nn.Parameter(np.array([3.0, 4.0]))
    single.grad[...] = [3.0, 4.0]
    assert clip_grad_norm_(single, 10.0) == 5.0
    np.testing.assert_array_equal(single.grad, [3.0, 4.0])
    assert clip_grad_norm_([], 1.0) == 0.0
    assert clip_grad_norm_(single, 1.0) == 5.0
    np.testing.assert_allclose(single.grad, np.array([3.0, 4.0]) / (5 + 1e-6), rtol=1e-14)


def test_clip_grad_norm_nonfinite():
    p = nn.Parameter(np.zeros(3))
    p.grad[...] = [1.0, np.inf, 2.0]
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad, [1.0, np.inf, 2.0])  # unchanged on error
    p.grad[...] = [1.0, np.nan, 2.0]
    assert math.isnan(clip_grad_norm_(p, 1.0, norm_type=math.inf))  # nan propagates, as torch


def test_clip_grad_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, 1.0, math.inf, 0.5):
        gs = [rng.standard_normal(s) for s in [(3, 4), (7,)]]
        ts = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in gs]
        for t, g in zip(ts, gs):
            t.grad = torch.tensor(g)
        ps = [nn.Parameter(np.zeros(g.shape)) for g in gs]
        for p, g in zip(ps, gs):
            p.grad[...] = g
        ref = float(torch.nn.utils.clip_grad_norm_(ts, 0.7, norm_type=norm_type))
        assert clip_grad_norm_(ps, 0.7, norm_type=norm_type) == pytest.approx(ref, rel=1e-12)
        for p, t in zip(ps, ts):
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- errors
_p = nn.Parameter(np.zeros(2))

ERROR_CASES = [
    (lambda: optim.SGD(_p, lr=0.1), TypeError, "params must be an iterable of Parameters or of dicts"),
    (lambda: optim.SGD(5, lr=0.1), TypeError, "params must be an iterable"),
    (lambda: optim.SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda: optim.SGD([_p, 3], lr=0.1), TypeError, "params[1] must be a fastconv.nn.Parameter"),
    (lambda: optim.SGD([_p]), ValueError, "must set 'lr'"),
    (lambda: optim.SGD([_p], lr=0.1, dampening=-0.1), ValueError, "dampening must be a finite number >= 0"),
    (lambda: optim.SGD([_p], lr=0.1, momentum="0.9"), TypeError, "momentum must be a float"),
    (lambda: optim.SGD([_p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError,
     "requires momentum > 0 and dampening = 0"),
    (lambda: optim.SGD([_p], lr=0.1, nesterov=1), TypeError, "nesterov must be a bool"),
    (lambda: optim.SGD([{"params": [_p], "lr": -2}], lr=0.1), ValueError,
     "param_groups[0]['lr'] must be a finite number >= 0"),
    (lambda: optim.SGD([{"params": [_p], "momentum": 0.0, "nesterov": True}], lr=0.1, momentum=0.9), ValueError,
     "requires momentum > 0"),
    (lambda: optim.SGD([{"lr": 0.1}], lr=0.1), ValueError, "param_groups[0] must have a 'params' entry"),
    (lambda: optim.SGD([{"params": [_p]}, _p], lr=0.1), TypeError, "params[1] must be a dict"),
    (lambda: optim.SGD([{"params": [_p, _p]}], lr=0.1), ValueError, "more than once"),
    (lambda: optim.SGD([{"params": [_p]}, {"params": [_p]}], lr=0.1), ValueError, "more than one parameter group"),
    (lambda: optim.SGD([{"params": {_p}}], lr=0.1), TypeError, "ordered sequence"),
    (lambda: optim.SGD([{"params": [np.zeros(2)]}], lr=0.1), TypeError,
     "param_groups[0]['params'][0] must be a fastconv.nn.Parameter"),
    (lambda: optim.SGD([{"params": 3}], lr=0.1), TypeError, "param_groups[0]['params'] must be a Parameter"),
    (lambda: optim.Adam([_p], betas=(0.9,)), ValueError, "betas must be a pair"),
    (lambda: optim.Adam([_p], betas=(-0.1, 0.9)), ValueError, "betas[0] must be a finite number >= 0"),
    (lambda: optim.Adam([_p], amsgrad="yes"), TypeError, "amsgrad must be a bool"),
    (lambda: optim.Adam([_p], eps=float("inf")), ValueError, "eps must be a finite number"),
    (lambda: optim.Adam([{"params": [_p], "betas": (0.9, 1.5)}]), ValueError, "param_groups[0]['betas'][1] must be"),
    (lambda: optim.AdamW([_p], weight_decay=-1e-2), ValueError, "weight_decay must be a finite number >= 0"),
    (lambda: optim.AdamW([_p], lr=None), TypeError, "lr must be a float"),
    (lambda: optim.AdamW([_p], betas=(0.9, 1.0)), ValueError, "betas[1] must be < 1.0"),
    (lambda: optim.AdamW(_p), TypeError, "params must be an iterable"),
    (lambda: clip_grad_norm_([_p], -1.0), ValueError, "max_norm must be >= 0"),
    (lambda: clip_grad_norm_([_p], float("nan")), ValueError, "max_norm must be >= 0"),
    (lambda: clip_grad_norm_([_p], "1"), TypeError, "max_norm must be a float"),
    (lambda: clip_grad_norm_([_p], 1.0, norm_type=0), ValueError, "norm_type must be > 0"),
    (lambda: clip_grad_norm_([_p], 1.0, norm_type="fro"), TypeError, "norm_type must be a float"),
    (lambda: clip_grad_norm_([_p, np.zeros(2)], 1.0), TypeError, "parameters[1] must be a fastconv.nn.Parameter"),
    (lambda: clip_grad_norm_(np.zeros(2), 1.0), TypeError, "parameters must be a Parameter or an iterable"),
    (lambda: clip_grad_norm_(3, 1.0), TypeError, "parameters must be a Parameter or an iterable"),
    (lambda: clip_grad_norm_([_p], 1.0, error_if_nonfinite=1), TypeError, "error_if_nonfinite must be a bool"),
]


@pytest.mark.parametrize("make,exc,words", ERROR_CASES)
def test_errors(make, exc, words):
    with pytest.raises(exc) as info:
        make()
    assert words in str(info.value)


@pytest.mark.parametrize("decay_all", [False, True])
def test_weight_decay_groups_decay_weights_only(decay_all):
    # One SGD step with zero gradients is pure decay: w <- w - lr * wd * w for the decayed
    # group; biases and BatchNorm parameters keep their values unless decay_all.
    from fastconv.training import weight_decay_groups

    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    for p in model.parameters():
        p.data[...] = np.random.default_rng(0).uniform(0.5, 1.5, p.data.shape)
        p.grad = np.zeros_like(p.data)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    groups = weight_decay_groups(model, 0.1, decay_norm_and_bias=decay_all)
    assert sum(len(g["params"]) for g in groups) == len(model.parameters())
    optim.SGD(groups, lr=0.5).step()
    for name, p in model.named_parameters():
        decayed = decay_all or p.data.ndim > 1
        expected = before[name] * (1 - 0.5 * 0.1) if decayed else before[name]
        np.testing.assert_allclose(p.data, expected, rtol=1e-6, err_msg=name)
