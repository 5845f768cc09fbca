"""Adam, as ``torch.optim.Adam``."""
import math

import numpy as np

from .._kernels import _optim
from .optimizer import Optimizer, ParamsT, _check_flag, _check_float


def _check_betas(betas, name):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be a pair of floats in [0, 1), got {betas!r}")
    return (_check_float(betas[0], f"{name}[0]", 0.0, 1.0), _check_float(betas[1], f"{name}[1]", 0.0, 1.0))


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba), as ``torch.optim.Adam``.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict (parameter groups)
        See :class:`Optimizer`; a group may override any of the hyper-parameters below.
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        L2 penalty added to the gradient (coupled), ``g + weight_decay * p``; with
        ``decoupled_weight_decay=True`` (:class:`AdamW`) the parameter is shrunk instead.
    amsgrad : bool, default False
        Use the running maximum of the second moment (Reddi et al.), as PyTorch.
    decoupled_weight_decay : bool, default False
        ``p *= 1 - lr * weight_decay`` before the update instead of the L2 term: AdamW.

    Notes
    -----
    Per parameter, at its step ``t`` (counted from 1): ``m = b1*m + (1-b1)*g``,
    ``v = b2*v + (1-b2)*g*g``, ``p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    State per parameter: ``"step"`` (int), ``"exp_avg"``, ``"exp_avg_sq"`` and with amsgrad
    ``"max_exp_avg_sq"``, as PyTorch.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _optional_state_keys = ("max_exp_avg_sq",)

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, hyper, name_of):
        out = dict(hyper)
        for key in ("lr", "eps", "weight_decay"):
            if key in out:
                out[key] = _check_float(out[key], name_of(key))
        if "betas" in out:
            out["betas"] = _check_betas(out["betas"], name_of("betas"))
        for key in ("amsgrad", "decoupled_weight_decay"):
            if key in out:
                out[key] = _check_flag(out[key], name_of(key))
        return out

    def _layout(self, group):
        return group["amsgrad"]

    def _prepare_state(self, p, state, group):
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros(p.data.shape, p.data.dtype)
            state["exp_avg_sq"] = np.zeros(p.data.shape, p.data.dtype)
        if group["amsgrad"] and state.get("max_exp_avg_sq") is None:
            state["max_exp_avg_sq"] = np.zeros(p.data.shape, p.data.dtype)
        return state["step"]

    def _state_arrays(self, state, group):
        arrays = (state["exp_avg"], state["exp_avg_sq"])
        return arrays + (state["max_exp_avg_sq"],) if group["amsgrad"] else arrays

    def _compiled_step(self, group, is_double, addresses, offsets, phase, n_threads):
        b1, b2 = group["betas"]
        _optim.adam_update(addresses, offsets, is_double, group["lr"], b1, b2, group["eps"],
                           group["weight_decay"], group["decoupled_weight_decay"], group["amsgrad"],
                           phase + 1, n_threads)

    def _numpy_step(self, group, p, state, phase):
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t = phase + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        g = p.grad
        if group["decoupled_weight_decay"]:
            p.data *= 1 - lr * wd
        elif wd:
            g = g + wd * p.data
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        if group["amsgrad"]:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v) * (1 / math.sqrt(1 - b2**t)) + eps
        p.data -= (lr / (1 - b1**t)) * m / denom

    def _after_step(self, plan):
        for state in plan.states:
            state["step"] += 1
