"""Ready-made models; ``MODELS`` maps each ``config["model"]`` name to its builder.

Every builder returns an :class:`~fastconv.nn.Sequential` with a ``config`` dict naming the
builder and its arguments, which is what model files store (:func:`build_model` rebuilds
the model from it).

State dicts have PyTorch's keys and shapes: each builder's docstring lists them (e.g.
``3.0.0.body.0.weight (16, 16, 3, 3)`` in :func:`cifar_resnet`), and ``tests/torch_models.py``
in the source repository defines the equivalent ``torch.nn`` modules, so a PyTorch
``state_dict()`` saved with ``safetensors.torch.save_file`` loads into the fastconv model
(``model.load_state_dict(fastconv.load(path))``) and a file written by :func:`fastconv.save`
loads into the PyTorch model (``safetensors.torch.load_file``).
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from .._typing import DTypeLike, RNGLike
from ..nn import Sequential

from .lenet import lenet5
from .resnet import basic_block, cifar_resnet, resnet8, resnet20
from .vgg import vgg_small

MODELS: dict[str, Callable[..., Sequential]] = {"lenet5": lenet5, "resnet8": resnet8, "resnet20": resnet20, "vgg_small": vgg_small}


def build_model(config: dict[str, Any], *, rng: RNGLike = None, dtype: DTypeLike = np.float32) -> Sequential:
    """Build the model a ``config`` dict describes (as stored in model files).

    Parameters
    ----------
    config : dict
        ``config["model"]`` names a builder in :data:`MODELS`; the builder's other
        arguments (``num_classes``, ``in_channels``, ``activation``, ...) are taken from
        the keys of the same names, other keys (``dataset``, ``normalize``) are kept as
        they are.
    rng, dtype
        Passed to the builder.

    Returns
    -------
    Sequential
        With ``config`` set to (a copy of) the given one.
    """
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        raise ValueError(f"config must name a model in {sorted(MODELS)}, got {config!r}")
    builder = MODELS[config["model"]]
    accepted = inspect.signature(builder).parameters
    kwargs = {k: v for k, v in config.items() if k in accepted and k not in ("rng", "dtype")}
    model = builder(**kwargs, rng=rng, dtype=dtype)
    model.config = dict(config)
    return model


__all__ = ["lenet5", "resnet8", "resnet20", "cifar_resnet", "basic_block", "vgg_small",
           "MODELS", "build_model"]
