"""LeNet-5 (LeCun et al., 1998)."""
from __future__ import annotations

import numpy as np

from .. import nn
from .._typing import DTypeLike, RNGLike
from .._validation import check_choice

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}
POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def lenet5(num_classes: int = 10, activation: str = "relu", pool: str = "max", *, rng: RNGLike = None,
           dtype: DTypeLike = np.float32) -> nn.Sequential:
    """LeNet-5 for 28x28 single-channel images (LeCun et al., 1998).

    28x28 input zero-padded by 2 -> C1 6@5x5 -> pool 2 -> C3 16@5x5 -> pool 2 ->
    F5 120 -> F6 84 -> ``num_classes`` logits.

    Parameters
    ----------
    num_classes : int
    activation : {"relu", "tanh"}
    pool : {"max", "avg"}
        ``activation="tanh", pool="avg"`` is the classic 1998 variant.
    rng : numpy.random.Generator or int, optional
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        With a ``config`` dict (what :func:`fastconv.save` stores).

    Notes
    -----
    State-dict keys and shapes (PyTorch's for the same ``nn.Sequential``, so weights move
    both ways, see :mod:`fastconv.models`; ``K`` = ``num_classes``)::

        0.weight   (6, 1, 5, 5)
        0.bias     (6,)
        3.weight   (16, 6, 5, 5)
        3.bias     (16,)
        7.weight   (120, 400)
        7.bias     (120,)
        9.weight   (84, 120)
        9.bias     (84,)
        11.weight  (K, 84)
        11.bias    (K,)
    """
    check_choice(activation, "activation", ACTIVATIONS)
    check_choice(pool, "pool", POOLS)
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    act, pl = ACTIVATIONS[activation], POOLS[pool]
    kw = dict(rng=rng, dtype=dtype)
    model = nn.Sequential(
        # the first layer's input gradient is never needed
        nn.Conv2d(1, 6, 5, padding=2, needs_input_grad=False, **kw), act(), pl(2),
        nn.Conv2d(6, 16, 5, **kw), act(), pl(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120, **kw), act(),
        nn.Linear(120, 84, **kw), act(),
        nn.Linear(84, int(num_classes), **kw),
    )
    model.needs_input_grad = False  # nothing needs the gradient of the images
    model.config = {"model": "lenet5", "num_classes": int(num_classes), "activation": activation, "pool": pool}
    return model

