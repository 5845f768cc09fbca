"""Stochastic gradient descent (momentum, dampening, Nesterov, weight decay), as
``torch.optim.SGD``."""
from typing import Any

import numpy as np

from .._kernels import _optim
from .optimizer import Optimizer, ParamsT, _check_flag, _check_float, required


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and
    weight decay, as ``torch.optim.SGD``.

    Parameters
    ----------
    params : iterable of Parameter, or iterable of dict (parameter groups)
        See :class:`Optimizer`; a group may override any of the hyper-parameters below.
    lr : float
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradient (coupled): ``g + weight_decay * p``.
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0`` (as PyTorch).

    Notes
    -----
    ``g = grad + weight_decay * p``; with momentum, ``b = g`` on a parameter's first step
    and ``b = momentum * b + (1 - dampening) * g`` after; then ``p -= lr * b``, or with
    Nesterov ``p -= lr * (g + momentum * b)``. State per parameter: ``"momentum_buffer"``
    (None without momentum), as PyTorch.
    """

    _state_keys = ("momentum_buffer",)

    def __init__(self, params: ParamsT, lr: Any = required, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov)
        super().__init__(params, defaults)

    def _validate(self, hyper, name_of):
        out = dict(hyper)
        for key in ("lr", "momentum", "dampening", "weight_decay"):
            if key in out and out[key] is not required:
                out[key] = _check_float(out[key], name_of(key))
        if "nesterov" in out:
            out["nesterov"] = _check_flag(out["nesterov"], name_of("nesterov"))
            if out["nesterov"] and (out.get("momentum", 0.0) == 0 or out.get("dampening", 0.0) != 0):
                raise ValueError(f"{name_of('nesterov')}=True requires momentum > 0 and dampening = 0 "
                                 f"(got momentum={out.get('momentum')}, dampening={out.get('dampening')})")
        return out

    def _layout(self, group):
        return group["momentum"] != 0

    def _prepare_state(self, p, state, group):
        state.setdefault("momentum_buffer", None)
        if group["momentum"] != 0 and state["momentum_buffer"] is None:
            # read times 0 on the first step, which sets it to the gradient
            state["momentum_buffer"] = np.zeros(p.data.shape, p.data.dtype)
            return 0
        return 1

    def _state_arrays(self, state, group):
        return (state["momentum_buffer"],) if group["momentum"] != 0 else ()

    def _compiled_step(self, group, is_double, addresses, offsets, phase, n_threads):
        _optim.sgd_update(addresses, offsets, is_double, group["lr"], group["momentum"],
                          group["dampening"], group["weight_decay"], group["nesterov"],
                          phase == 0, n_threads)

    def _numpy_step(self, group, p, state, phase):
        momentum, wd = group["momentum"], group["weight_decay"]
        g = p.grad
        if wd:
            g = g + wd * p.data
        if momentum:
            buf = state["momentum_buffer"]
            if phase == 0:
                buf[...] = g
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * g
            g = g + momentum * buf if group["nesterov"] else buf
        p.data -= p.data.dtype.type(group["lr"]) * g
