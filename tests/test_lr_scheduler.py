"""Learning-rate schedulers: get_last_lr() sequences against their closed forms (and
PyTorch's schedulers when installed), momentum cycling, state_dict round trips, errors."""
import warnings

import numpy as np
import pytest

from fastconv import nn, optim
from fastconv.optim import lr_scheduler as S


def _sgd(lrs=(0.1,), momentum=0.9, **kw):
    groups = [{"params": [nn.Parameter(np.zeros(3))], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0], momentum=momentum, **kw)


def _sequence(sched, n):
    """get_last_lr() after construction and after each of n steps."""
    out = [sched.get_last_lr()]
    for _ in range(n):
        sched.optimizer.step()
        sched.step()
        out.append(sched.get_last_lr())
    return np.array(out)


def _check(seq, closed, bases):
    t = np.arange(len(seq))
    expected = np.stack([closed(t, b) for b in bases], axis=1)
    np.testing.assert_allclose(seq, expected, rtol=1e-12, atol=1e-15)


BASES = (0.1, 0.03)


def test_step_lr():
    sched = S.StepLR(_sgd(BASES), step_size=4, gamma=0.5)
    _check(_sequence(sched, 30), lambda t, b: b * 0.5 ** (t // 4), BASES)
    assert sched.last_epoch == 30


def test_multistep_lr():
    sched = S.MultiStepLR(_sgd(BASES), milestones=[3, 7, 7, 20], gamma=0.3)
    ms = np.array([3, 7, 7, 20])
    _check(_sequence(sched, 30), lambda t, b: b * 0.3 ** (ms[None, :] <= t[:, None]).sum(1), BASES)


@pytest.mark.parametrize("eta_min", [0.0, 0.004])
def test_cosine_annealing_lr(eta_min):
    # past T_max it continues as the cosine (back up), as PyTorch's
    sched = S.CosineAnnealingLR(_sgd(BASES), T_max=12, eta_min=eta_min)
    _check(_sequence(sched, 50), lambda t, b: eta_min + (b - eta_min) * (1 + np.cos(np.pi * t / 12)) / 2, BASES)


@pytest.mark.parametrize("start,end,n", [(1 / 3, 1.0, 5), (1.0, 0.1, 8), (0.25, 0.0, 13)])
def test_linear_lr(start, end, n):
    sched = S.LinearLR(_sgd(BASES), start_factor=start, end_factor=end, total_iters=n)
    _check(_sequence(sched, 25), lambda t, b: b * (start + (end - start) * np.minimum(t, n) / n), BASES)


def _anneal(start, end, frac, strategy):
    if strategy == "cos":
        return end + (start - end) * (1 + np.cos(np.pi * frac)) / 2
    return start + (end - start) * frac


def _one_cycle_closed(t, peak, total, pct, div, final_div, strategy, three_phase, lo_m=0.85, hi_m=0.95):
    """(lr, momentum) of the 1cycle policy at step t, phase by phase (PyTorch's phase ends:
    pct*T - 1, [2*pct*T - 2,] T - 1)."""
    init, low = peak / div, peak / div / final_div
    up_end = pct * total - 1
    if three_phase:
        ends = [up_end, 2 * pct * total - 2, total - 1]
        lrs = [(init, peak), (peak, init), (init, low)]
        moms = [(hi_m, lo_m), (lo_m, hi_m), (hi_m, hi_m)]
    else:
        ends = [up_end, total - 1]
        lrs = [(init, peak), (peak, low)]
        moms = [(hi_m, lo_m), (lo_m, hi_m)]
    start = 0.0
    for k, end in enumerate(ends):
        if t <= end or k == len(ends) - 1:
            frac = (t - start) / (end - start)
            return _anneal(*lrs[k], frac, strategy), _anneal(*moms[k], frac, strategy)
        start = end


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("three_phase", [False, True])
def test_one_cycle_lr_phases_and_momentum(strategy, three_phase):
    total = 40
    opt = _sgd(BASES)
    sched = S.OneCycleLR(opt, max_lr=[0.5, 0.2], total_steps=total, pct_start=0.25,
                         anneal_strategy=strategy, three_phase=three_phase)
    lrs, moms = [sched.get_last_lr()], [[g["momentum"] for g in opt.param_groups]]
    for _ in range(total - 1):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        moms.append([g["momentum"] for g in opt.param_groups])
    lrs, moms = np.array(lrs), np.array(moms)
    for j, peak in enumerate([0.5, 0.2]):
        ref = np.array([_one_cycle_closed(t, peak, total, 0.25, 25.0, 1e4, strategy, three_phase)
                        for t in range(total)])
        np.testing.assert_allclose(lrs[:, j], ref[:, 0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(moms[:, j], ref[:, 1], rtol=1e-12)
        assert lrs[0, j] == pytest.approx(peak / 25) and lrs[-1, j] == pytest.approx(peak / 25 / 1e4)
        assert lrs[:, j].max() == pytest.approx(peak)  # reached at step 9 = 0.25*40 - 1
        assert np.argmax(lrs[:, j]) == 9 and moms[9, j] == pytest.approx(0.85)
    assert opt.param_groups[0]["initial_lr"] == 0.5 / 25 and opt.param_groups[1]["max_lr"] == 0.2
    with pytest.raises(ValueError, match="total_steps is 40"):
        sched.step()
        sched.step()


def test_one_cycle_cycles_adams_beta1_and_epochs_form():
    opt = optim.Adam([nn.Parameter(np.zeros(2))], lr=1e-3, betas=(0.9, 0.99))
    sched = S.OneCycleLR(opt, max_lr=0.01, epochs=3, steps_per_epoch=5, base_momentum=0.8, max_momentum=0.9)
    assert sched.total_steps == 15
    betas = [opt.param_groups[0]["betas"]]
    for _ in range(14):
        sched.step()
        betas.append(opt.param_groups[0]["betas"])
    ref = [_one_cycle_closed(t, 0.01, 15, 0.3, 25.0, 1e4, "cos", False, 0.8, 0.9)[1] for t in range(15)]
    np.testing.assert_allclose([b[0] for b in betas], ref, rtol=1e-12)
    assert all(b[1] == 0.99 for b in betas)
    # cycle_momentum=False leaves the momentum alone
    opt = _sgd(momentum=0.5)
    S.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False).step()
    assert opt.param_groups[0]["momentum"] == 0.5


def test_constructor_performs_the_initial_step():
    opt = _sgd((0.2,))
    sched = S.StepLR(opt, 3)
    assert sched.last_epoch == 0 and sched.base_lrs == [0.2]
    assert opt.param_groups[0]["initial_lr"] == 0.2 and sched.get_last_lr() == [0.2]
    lin = S.LinearLR(_sgd((0.3,)), start_factor=0.5)
    assert lin.get_last_lr() == [0.15] and lin.optimizer.param_groups[0]["lr"] == 0.15
    assert lin.optimizer.lr == 0.15  # the optimizer's lr property sees it
    # resuming (last_epoch >= 0) keeps the current lr and needs initial_lr
    opt = _sgd((0.2,))
    with pytest.raises(ValueError, match="has no 'initial_lr'"):
        S.StepLR(opt, 3, last_epoch=4)
    opt.param_groups[0]["initial_lr"] = 0.4
    resumed = S.StepLR(opt, 3, last_epoch=4)
    assert resumed.last_epoch == 5 and resumed.get_last_lr() == [0.2] and resumed.base_lrs == [0.4]


def test_step_with_epoch_uses_the_closed_form():
    sched = S.StepLR(_sgd((1.0,)), 2, gamma=0.5)
    with pytest.warns(UserWarning, match="deprecated"):
        sched.step(7)
    assert sched.last_epoch == 7 and sched.get_last_lr() == [0.5**3]
    cos = S.CosineAnnealingLR(_sgd((1.0,)), 10)
    with pytest.warns(UserWarning):
        cos.step(5)
    assert cos.get_last_lr() == [pytest.approx(0.5)]


def test_scheduler_drives_the_updates():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = S.StepLR(opt, 2, gamma=0.1)
    for _ in range(5):
        p.grad[...] = 1.0
        opt.step()
        sched.step()
    # lrs used: 1, 1, 0.1, 0.1, 0.01
    np.testing.assert_allclose(p.data, [-(1 + 1 + 0.1 + 0.1 + 0.01)], rtol=1e-12)


MAKERS = {
    "step": lambda o: S.StepLR(o, 3, gamma=0.7),
    "multistep": lambda o: S.MultiStepLR(o, [2, 5, 9], gamma=0.5),
    "cosine": lambda o: S.CosineAnnealingLR(o, 8, eta_min=0.001),
    "linear": lambda o: S.LinearLR(o, 0.2, 0.9, 6),
    "onecycle": lambda o: S.OneCycleLR(o, [0.4, 0.1], total_steps=30),
    "onecycle3": lambda o: S.OneCycleLR(o, 0.3, total_steps=30, three_phase=True, anneal_strategy="linear"),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_state_dict_round_trip(name):
    opt = _sgd(BASES)
    sched = MAKERS[name](opt)
    _sequence(sched, 7)
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 7
    straight = _sequence(sched, 12)
    opt2 = _sgd((0.9, 0.9))
    sched2 = MAKERS[name](opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    resumed = _sequence(sched2, 12)
    np.testing.assert_array_equal(resumed, straight)
    np.testing.assert_array_equal([g["momentum"] for g in opt2.param_groups],
                                  [g["momentum"] for g in opt.param_groups])
    with pytest.raises(ValueError, match="missing keys"):
        sched2.load_state_dict({"last_epoch": 3})
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        sched2.load_state_dict(None)


TORCH_MAKERS = {
    "step": ("StepLR", dict(step_size=3, gamma=0.7)),
    "multistep": ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.5)),
    "cosine": ("CosineAnnealingLR", dict(T_max=8, eta_min=0.001)),
    "cosine0": ("CosineAnnealingLR", dict(T_max=5)),
    "linear": ("LinearLR", dict(start_factor=0.2, end_factor=0.9, total_iters=6)),
    "linear-default": ("LinearLR", {}),
    "onecycle": ("OneCycleLR", dict(max_lr=[0.4, 0.1], total_steps=40)),
    "onecycle3": ("OneCycleLR", dict(max_lr=0.3, total_steps=40, three_phase=True, anneal_strategy="linear",
                                     pct_start=0.4)),
    "onecycle-epochs": ("OneCycleLR", dict(max_lr=0.3, epochs=4, steps_per_epoch=10, div_factor=10.0,
                                           final_div_factor=100.0, base_momentum=0.7, max_momentum=0.99)),
}


@pytest.mark.parametrize("name", list(TORCH_MAKERS))
@pytest.mark.parametrize("opt_name", ["SGD", "Adam"])
def test_matches_torch(name, opt_name):
    torch = pytest.importorskip("torch")
    cls, kwargs = TORCH_MAKERS[name]
    kw = dict(momentum=0.9) if opt_name == "SGD" else {}
    tgroups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in BASES]
    topt = getattr(torch.optim, opt_name)(tgroups, lr=BASES[0], **kw)
    tsched = getattr(torch.optim.lr_scheduler, cls)(topt, **kwargs)
    groups = [{"params": [nn.Parameter(np.zeros(2))], "lr": lr} for lr in BASES]
    opt = getattr(optim, opt_name)(groups, lr=BASES[0], **kw)
    sched = getattr(S, cls)(opt, **kwargs)
    key = "momentum" if opt_name == "SGD" else "betas"
    for _ in range(39):
        assert sched.get_last_lr() == tsched.get_last_lr()  # the same floating-point operations
        assert [g[key] for g in opt.param_groups] == [tuple(g[key]) if key == "betas" else g[key]
                                                      for g in topt.param_groups]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            topt.step()
            tsched.step()
        opt.step()
        sched.step()
    assert sched.last_epoch == tsched.last_epoch == 39


_o = _sgd()

ERROR_CASES = [
    (lambda: S.StepLR("opt", 3), TypeError, "optimizer must be a fastconv.optim.Optimizer"),
    (lambda: S.StepLR(_sgd(), 0), ValueError, "step_size must be an int >= 1"),
    (lambda: S.StepLR(_sgd(), 2.0), TypeError, "step_size must be an int"),
    (lambda: S.StepLR(_sgd(), 2, gamma=-0.5), ValueError, "gamma must be a finite number >= 0"),
    (lambda: S.StepLR(_sgd(), 2, gamma="0.5"), TypeError, "gamma must be a float"),
    (lambda: S.StepLR(_sgd(), 2, last_epoch=-2), ValueError, "last_epoch must be an int >= -1"),
    (lambda: S.MultiStepLR(_sgd(), 5), TypeError, "milestones must be an iterable of ints"),
    (lambda: S.MultiStepLR(_sgd(), [5, 2]), ValueError, "milestones must be non-decreasing"),
    (lambda: S.MultiStepLR(_sgd(), [1, -2]), ValueError, "milestones[1] must be an int >= 0"),
    (lambda: S.MultiStepLR(_sgd(), [1.5]), TypeError, "milestones[0] must be an int"),
    (lambda: S.CosineAnnealingLR(_sgd(), 0), ValueError, "T_max must be an int >= 1"),
    (lambda: S.CosineAnnealingLR(_sgd(), 10, eta_min=-1.0), ValueError, "eta_min must be a finite number >= 0"),
    (lambda: S.LinearLR(_sgd(), start_factor=0.0), ValueError, "start_factor must be > 0"),
    (lambda: S.LinearLR(_sgd(), start_factor=1.5), ValueError, "start_factor must be <= 1.0"),
    (lambda: S.LinearLR(_sgd(), end_factor=2.0), ValueError, "end_factor must be <= 1.0"),
    (lambda: S.LinearLR(_sgd(), total_iters=0), ValueError, "total_iters must be an int >= 1"),
    (lambda: S.OneCycleLR(_sgd(), 0.1), ValueError, "needs total_steps, or epochs and steps_per_epoch"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, epochs=3), ValueError, "needs total_steps"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, total_steps=0), ValueError, "total_steps must be an int >= 1"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, epochs=0, steps_per_epoch=3), ValueError, "epochs must be an int >= 1"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, epochs=2, steps_per_epoch=1.5), TypeError, "steps_per_epoch must be an int"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, pct_start=1.2), ValueError, "pct_start must be <= 1.0"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, anneal_strategy="exp"), ValueError,
     "anneal_strategy must be one of 'cos', 'linear', got"),
    (lambda: S.OneCycleLR(_sgd(), [0.1, 0.2], 10), ValueError, "max_lr must be a float or a list of 1 floats"),
    (lambda: S.OneCycleLR(_sgd(), -0.1, 10), ValueError, "max_lr must be a finite number >= 0"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, div_factor=0), ValueError, "div_factor must be > 0"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, final_div_factor=-1.0), ValueError, "final_div_factor must be a finite"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, three_phase=1), TypeError, "three_phase must be a bool"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, cycle_momentum="no"), TypeError, "cycle_momentum must be a bool"),
    (lambda: S.OneCycleLR(_sgd(), 0.1, 10, max_momentum=[0.9, 0.9]), ValueError, "max_momentum must be a float"),
    (lambda: S.OneCycleLR(None, 0.1, 10), TypeError, "optimizer must be a fastconv.optim.Optimizer"),
    (lambda: _o and S.StepLR(_o, 2).step(-1), ValueError, "epoch must be an int >= 0"),
]


@pytest.mark.parametrize("make,exc,words", ERROR_CASES)
def test_errors(make, exc, words):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc) as info:
            make()
    assert words in str(info.value)
