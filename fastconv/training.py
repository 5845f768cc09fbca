"""Training and evaluation loops used by the CLI (importable on their own)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from ._parallel import blas_single_thread
from ._validation import check_choice

if TYPE_CHECKING:
    from ._typing import ArrayLike, FloatArray, NDArray
    from .nn import CrossEntropyLoss, Module
    from .optim import Optimizer
    from .optim.lr_scheduler import LRScheduler


def train_epoch(model: Module, loss_fn: CrossEntropyLoss, optimizer: Optimizer,
                batches: Iterable[tuple[FloatArray, ArrayLike]],
                progress: Callable[[int, float, float], Any] | None = None,
                scheduler: LRScheduler | None = None, totals: dict[str, Any] | None = None) -> Any:
    """One pass over ``batches`` (an iterable of (x, labels)).

    ``progress(n, loss, images_per_second)`` is called after each step; ``scheduler``, if
    given, is stepped after every optimizer step (a per-step schedule such as OneCycleLR).
    ``totals``, if given, is a dict of running sums (``loss_sum``, ``correct``, ``seen``,
    ``steps``) that is updated in place after every step, before ``progress``; pass the
    totals of an interrupted epoch to continue it (what :mod:`fastconv.checkpoint` resumes).

    Returns
    -------
    dict with ``loss`` (mean over samples), ``train_acc`` (fraction), ``samples``, ``seconds``.
    """
    model.train()
    total_loss = 0.0 if totals is None else totals.setdefault("loss_sum", 0.0)
    correct = 0 if totals is None else totals.setdefault("correct", 0)
    seen = 0 if totals is None else totals.setdefault("seen", 0)
    t0 = time.perf_counter()
    # BLAS pinned to one thread once for the epoch: the layers' own pins (Sequential's,
    # Linear's, im2col's) then cost a counter, not ~4 us of library calls a step each.
    with blas_single_thread():
        for x, y in batches:
            logits = model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            # (fastconv.distributed.DataParallel: a rank's weight-0 padding image counts 0)
            count = getattr(model, "local_count", None)
            n = len(y) if count is None else count
            total_loss += loss * n
            correct += int((logits.argmax(axis=1) == y).sum()) if n else 0
            seen += n
            if totals is not None:
                totals.update(loss_sum=total_loss, correct=correct, seen=seen,
                              steps=totals.get("steps", 0) + 1)
            if progress is not None:
                progress(n, loss, seen / (time.perf_counter() - t0))
    seconds = time.perf_counter() - t0
    return {"loss": total_loss / max(seen, 1), "train_acc": correct / max(seen, 1),
            "samples": seen, "seconds": seconds}


def predict(model: Module, batches: Iterable[tuple[FloatArray, Any]]) -> NDArray[Any]:
    """Predicted classes for every batch, concatenated (model in eval mode)."""
    model.eval()
    preds = [model(x).argmax(axis=1) for x, _ in batches]
    return np.concatenate(preds) if preds else np.zeros(0, np.intp)


def confusion_matrix(labels: ArrayLike, predictions: ArrayLike, num_classes: int = 10) -> NDArray[Any]:
    """``m[i, j]`` = number of samples of class i predicted as j."""
    m: NDArray[np.int64] = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (np.asarray(labels, np.intp), np.asarray(predictions, np.intp)), 1)
    return m


def weight_decay_groups(model: Module, weight_decay: float,
                        decay_norm_and_bias: bool = False) -> list[dict[str, Any]]:
    """Optimizer parameter groups that apply ``weight_decay`` to the weights only.

    The usual recipe for networks with batch normalisation (He et al.'s ResNets as
    trained by torchvision's references and timm): one-dimensional parameters (biases,
    BatchNorm's ``weight``/``bias``) get no decay, because shrinking a scale that the next
    BatchNorm undoes only fights the optimizer. Frozen parameters are left out.

    Parameters
    ----------
    model : Module
    weight_decay : float
        The decay of the weight group (multi-dimensional parameters).
    decay_norm_and_bias : bool
        Decay the one-dimensional parameters too (one group; PyTorch's plain default).

    Returns
    -------
    list of dict
        ``[{"params": weights, "weight_decay": weight_decay}, {"params": others,
        "weight_decay": 0.0}]``, empty groups left out; pass it as an optimizer's ``params``.
    """
    params = model.parameters()
    if decay_norm_and_bias:
        return [{"params": params, "weight_decay": weight_decay}]
    weights = [p for p in params if p.data.ndim > 1]
    others = [p for p in params if p.data.ndim <= 1]
    return [g for g in ({"params": weights, "weight_decay": weight_decay},
                        {"params": others, "weight_decay": 0.0}) if g["params"]]


def freeze(model: Module, prefixes: str | Sequence[str]) -> list[str]:
    """Freeze (``requires_grad=False``) every parameter whose dotted name is one of
    ``prefixes`` or lies under one (``"0"`` freezes ``0.weight`` and ``0.bias``, not ``10.weight``).

    Returns the list of frozen names; raises ValueError naming a prefix that matches nothing.
    """
    frozen = []
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        base = prefix.rstrip(".")
        hits = [n for n in names if n == base or n.startswith(base + ".")]
        if not hits:
            raise ValueError(f"freeze prefix {prefix!r} matches no parameter; names are {names}")
        frozen += hits
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad = False
    return sorted(set(frozen), key=names.index)


def _cosine(optimizer, epochs, steps_per_epoch):
    from .optim.lr_scheduler import CosineAnnealingLR

    return CosineAnnealingLR(optimizer, T_max=epochs), False


def _step(optimizer, epochs, steps_per_epoch):
    from .optim.lr_scheduler import MultiStepLR

    return MultiStepLR(optimizer, milestones=sorted({max(1, epochs // 2), max(1, 3 * epochs // 4)}),
                       gamma=0.1), False


def _onecycle(optimizer, epochs, steps_per_epoch):
    from .optim.lr_scheduler import OneCycleLR

    return OneCycleLR(optimizer, max_lr=optimizer.lr, total_steps=epochs * steps_per_epoch), True


def _constant(optimizer, epochs, steps_per_epoch):
    return None, False


#: ``--lr-schedule`` names -> builders ``(optimizer, epochs, steps_per_epoch) -> (scheduler,
#: per_step)``: cosine decay per epoch (T_max = epochs), step decay by 10 at 1/2 and 3/4 of
#: the epochs, one-cycle per step (peak = the given lr, PyTorch's defaults otherwise),
#: constant.
LR_SCHEDULES = {"cosine": _cosine, "step": _step, "onecycle": _onecycle, "constant": _constant}


def make_lr_schedule(name: str, optimizer: Optimizer, epochs: int,
                     steps_per_epoch: int) -> tuple[LRScheduler | None, bool]:
    """The scheduler for ``name`` (see :data:`LR_SCHEDULES`) and whether it steps per batch
    (True) or per epoch (False); ``(None, False)`` for a constant rate."""
    return check_choice(name, "lr schedule", LR_SCHEDULES)(optimizer, epochs, steps_per_epoch)
