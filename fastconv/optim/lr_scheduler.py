"""Learning-rate schedulers, as ``torch.optim.lr_scheduler``.

A scheduler writes ``group["lr"]`` of its optimizer's parameter groups; call its
:meth:`~LRScheduler.step` after ``optimizer.step()`` (once per epoch or per batch, as the
schedule is meant). The constructor performs the initial step, which sets the learning
rates for epoch 0 and stores each group's starting value as ``group["initial_lr"]``.
``step()`` uses PyTorch's recursive ("chainable") forms, so the sequences of
:meth:`~LRScheduler.get_last_lr` equal PyTorch's; ``step(epoch)`` (deprecated, as in
PyTorch) jumps with the closed form.

Example
-------
>>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
>>> sched = CosineAnnealingLR(opt, T_max=epochs)
>>> for epoch in range(epochs):
...     train_epoch(model, loss_fn, opt, batches)
...     sched.step()
"""
from __future__ import annotations

import copy
import math
import numbers
import warnings
from bisect import bisect_right
from collections import Counter
from typing import Any, Iterable, Sequence

from .._validation import check_choice
from .optimizer import Optimizer, _check_flag, _check_float

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR"]


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


class LRScheduler:
    """Base class: subclasses define :meth:`get_lr` (the next learning rate of every group
    from the current ones, PyTorch's recursive form) and, where one exists,
    ``_get_closed_form_lr`` (the learning rate at ``last_epoch`` from ``base_lrs``).

    Parameters
    ----------
    optimizer : Optimizer
    last_epoch : int, default -1
        The index of the last epoch; -1 starts a new schedule. A value >= 0 resumes one and
        needs ``"initial_lr"`` in every parameter group (prefer :meth:`load_state_dict`).

    Attributes
    ----------
    base_lrs : list of float
        Every group's ``initial_lr``.
    last_epoch : int
        How many times :meth:`step` ran after the initial step (0 after construction).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastconv.optim.Optimizer, got {type(optimizer).__name__}")
        last_epoch = _check_int(last_epoch, "last_epoch", -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise ValueError(f"last_epoch={last_epoch} resumes a schedule, but param_groups[{i}] "
                                     "has no 'initial_lr' (load the optimizer's state_dict first)")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rates for ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def get_last_lr(self) -> list[float]:
        """The learning rates the last :meth:`step` set, one per parameter group."""
        return list(self._last_lr)

    def step(self, epoch: int | None = None) -> None:
        """Advance the schedule by one epoch and write every group's ``"lr"``.

        Parameters
        ----------
        epoch : int, optional
            Deprecated (as in PyTorch): jump to this epoch, with the closed form where the
            scheduler has one.
        """
        self._step_count += 1
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            warnings.warn("step(epoch) is deprecated (as in PyTorch): call step() once per epoch",
                          UserWarning, stacklevel=2)
            self.last_epoch = _check_int(epoch, "epoch", 0)
            closed = getattr(self, "_get_closed_form_lr", None)
            values = closed() if closed is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (a copy), as PyTorch's schedulers."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of a scheduler of the same kind.

        Raises
        ------
        ValueError
            Naming the keys that are missing or unexpected.
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        expected = {key for key in self.__dict__ if key != "optimizer"}
        missing, unexpected = sorted(expected - set(state_dict)), sorted(set(state_dict) - expected)
        if missing or unexpected:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        self.__dict__.update(copy.deepcopy(state_dict))

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs:
    ``lr = initial_lr * gamma ** (epoch // step_size)``.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int
        Period of the decay, > 0.
    gamma : float, default 0.1
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        self.step_size = _check_int(step_size, "step_size", 1)
        self.gamma = _check_float(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._group_lrs()
        return [group["lr"] * self.gamma for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each milestone epoch:
    ``lr = initial_lr * gamma ** (number of milestones <= epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
    milestones : iterable of int
        Epoch indices, non-decreasing (a repeated one multiplies by gamma once per copy).
    gamma : float, default 0.1
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1) -> None:
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be an iterable of ints, got {type(milestones).__name__}")
        milestones = [_check_int(m, f"milestones[{i}]", 0) for i, m in enumerate(milestones)]
        if any(b < a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones must be non-decreasing, got {milestones}")
        self.milestones = Counter(milestones)
        self.gamma = _check_float(gamma, "gamma")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._group_lrs()
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch]
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        milestones = sorted(self.milestones.elements())
        return [base * self.gamma ** bisect_right(milestones, self.last_epoch) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from ``initial_lr`` to ``eta_min`` over ``T_max`` epochs (SGDR
    without restarts): ``eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``,
    continuing as a cosine (back up) past ``T_max``, as PyTorch.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int
        Half period, > 0.
    eta_min : float, default 0
    last_epoch : int, default -1

    Notes
    -----
    ``step()`` uses PyTorch's recursive form, which equals the closed form above (to
    rounding) when stepped once per epoch and also follows changes made to ``group["lr"]``
    in between.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> None:
        self.T_max = _check_int(T_max, "T_max", 1)
        self.eta_min = _check_float(eta_min, "eta_min")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, T, eta = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._group_lrs()
        if self._step_count == 1 and t > 0:
            return [eta + (base - eta) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - eta) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (group["lr"] - eta) + eta for group in groups]

    def _get_closed_form_lr(self):
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
                for base in self.base_lrs]


class LinearLR(LRScheduler):
    """Scale the learning rate by a factor going linearly from ``start_factor`` to
    ``end_factor`` over ``total_iters`` epochs, then keep it:
    ``lr = initial_lr * (start + (end - start) * min(t, total_iters) / total_iters)``.

    Parameters
    ----------
    optimizer : Optimizer
    start_factor : float, default 1/3
        In (0, 1].
    end_factor : float, default 1
        In [0, 1].
    total_iters : int, default 5
        > 0.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1) -> None:
        start_factor = _check_float(start_factor, "start_factor", 0.0, 1.0, inclusive_max=True)
        if start_factor == 0:
            raise ValueError("start_factor must be > 0 (and <= 1), got 0.0")
        self.start_factor = start_factor
        self.end_factor = _check_float(end_factor, "end_factor", 0.0, 1.0, inclusive_max=True)
        self.total_iters = _check_int(total_iters, "total_iters", 1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        t, s, e, n = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        if t == 0:
            return [group["lr"] * s for group in self.optimizer.param_groups]
        if self._is_initial or t > n:
            return self._group_lrs()
        return [group["lr"] * (1.0 + (e - s) / (n * s + (t - 1) * (e - s)))
                for group in self.optimizer.param_groups]

    def _get_closed_form_lr(self):
        t, s, e, n = self.last_epoch, self.start_factor, self.end_factor, self.total_iters
        return [base * (s + (e - s) * min(n, t) / n) for base in self.base_lrs]


def _annealing_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _annealing_linear(start, end, pct):
    return (end - start) * pct + start


_ANNEALING = {"cos": _annealing_cos, "linear": _annealing_linear}


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped once per batch, as PyTorch's: the learning
    rate goes from ``max_lr / div_factor`` up to ``max_lr`` over the first ``pct_start`` of
    the steps, then down to ``max_lr / (div_factor * final_div_factor)`` (``three_phase``:
    back to the start over as many steps, then down to the minimum); the momentum (SGD's
    ``momentum``, Adam's ``beta1``) moves inversely between ``max_momentum`` and
    ``base_momentum`` when ``cycle_momentum``.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float or list of float (one per group)
    total_steps : int, optional
        Length of the cycle; else ``epochs * steps_per_epoch``.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
        Fraction of the cycle spent increasing the learning rate, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default "cos"
    cycle_momentum : bool, default True
        As PyTorch: sets the momentum (or beta1) of every group to ``max_momentum`` at once
        and cycles it; the optimizer must have ``momentum`` or ``betas``.
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95
    div_factor : float, default 25
    final_div_factor : float, default 1e4
    three_phase : bool, default False
    last_epoch : int, default -1
        Here the index of the last batch.

    Raises
    ------
    ValueError
        From :meth:`step` past ``total_steps`` steps.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum: float | Sequence[float] = 0.85, max_momentum: float | Sequence[float] = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a fastconv.optim.Optimizer, got {type(optimizer).__name__}")
        if total_steps is not None:
            self.total_steps = _check_int(total_steps, "total_steps", 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (_check_int(epochs, "epochs", 1)
                                * _check_int(steps_per_epoch, "steps_per_epoch", 1))
        else:
            raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
        pct_start = _check_float(pct_start, "pct_start", 0.0, 1.0, inclusive_max=True)
        check_choice(anneal_strategy, "anneal_strategy", _ANNEALING)
        self.anneal_strategy = anneal_strategy
        div_factor = _check_float(div_factor, "div_factor")
        final_div_factor = _check_float(final_div_factor, "final_div_factor")
        for name, v in (("div_factor", div_factor), ("final_div_factor", final_div_factor)):
            if v == 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        three_phase = _check_flag(three_phase, "three_phase")
        self.cycle_momentum = _check_flag(cycle_momentum, "cycle_momentum")
        last_epoch = _check_int(last_epoch, "last_epoch", -1)
        n = self.total_steps
        if three_phase:
            self._schedule_phases = [
                dict(end_step=float(pct_start * n) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=float(2 * pct_start * n) - 2, start_lr="max_lr", end_lr="initial_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
                dict(end_step=n - 1, start_lr="initial_lr", end_lr="min_lr",
                     start_momentum="max_momentum", end_momentum="max_momentum"),
            ]
        else:
            self._schedule_phases = [
                dict(end_step=float(pct_start * n) - 1, start_lr="initial_lr", end_lr="max_lr",
                     start_momentum="max_momentum", end_momentum="base_momentum"),
                dict(end_step=n - 1, start_lr="max_lr", end_lr="min_lr",
                     start_momentum="base_momentum", end_momentum="max_momentum"),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr)
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("cycle_momentum=True needs an optimizer with momentum or betas "
                                 f"({type(optimizer).__name__} has neither); pass cycle_momentum=False")
            self.use_beta1 = "betas" in optimizer.defaults
            max_momentums = _per_group("max_momentum", optimizer, max_momentum)
            base_momentums = _per_group("base_momentum", optimizer, base_momentum)
        if last_epoch == -1:
            for group, top in zip(optimizer.param_groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                for group, top, base in zip(optimizer.param_groups, max_momentums, base_momentums):
                    if self.use_beta1:
                        group["betas"] = (top, *group["betas"][1:])
                    else:
                        group["momentum"] = top
                    group["max_momentum"] = top
                    group["base_momentum"] = base
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        anneal = _ANNEALING[self.anneal_strategy]
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, but total_steps is {self.total_steps}")
        lrs = []
        phases = self._schedule_phases
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(phases):
                end = phase["end_step"]
                if step <= end or i == len(phases) - 1:
                    pct = (step - start) / (end - start)
                    lr = anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                    break
                start = phase["end_step"]
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


def _per_group(name, optimizer, value):
    """``value`` for every parameter group: a float for all, or a list with one per group."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must be a float or a list of {n} floats (one per parameter group), "
                             f"got {len(value)} values")
        return [_check_float(v, f"{name}[{i}]") for i, v in enumerate(value)]
    return [_check_float(value, name)] * n
