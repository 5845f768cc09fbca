"""A small VGG-style network (Simonyan & Zisserman 2014): stacks of 3x3 conv-BN-ReLU with
max pooling, for 28x28 (or 32x32) images."""
from __future__ import annotations

import numpy as np

from .. import nn
from .._random import get_rng
from .._typing import DTypeLike, RNGLike
from ._common import check_count

#: filters of each stage; every stage is two conv-BN-ReLU layers then a 2x2 max pool
VGG_SMALL_WIDTHS = (32, 64, 128)


def vgg_small(in_channels: int = 1, num_classes: int = 10, *, rng: RNGLike = None,
              dtype: DTypeLike = np.float32) -> nn.Sequential:
    """VGG-style classifier: 3 stages of (conv 3x3-BN-ReLU) x 2 + max pool 2x2 with 32, 64,
    128 filters (28 -> 14 -> 7 -> 3), global average pooling, Dropout(0.3), Linear.

    Parameters
    ----------
    in_channels : {1, 3}
    num_classes : int
    rng : numpy.random.Generator or int, optional
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        With a ``config`` dict.

    Notes
    -----
    State-dict keys and shapes (PyTorch's for the same ``nn.Sequential``, see
    :mod:`fastconv.models`; ``C`` = ``in_channels``, ``K`` = ``num_classes``; ``{a,b}``
    stands for each choice)::

        0.weight                                        (32, C, 3, 3)
        3.weight                                        (32, 32, 3, 3)
        {1,4}.{weight,bias,running_mean,running_var}    (32,)
        {1,4}.num_batches_tracked                       ()
        7.weight                                        (64, 32, 3, 3)
        10.weight                                       (64, 64, 3, 3)
        {8,11}.{weight,bias,running_mean,running_var}   (64,)
        {8,11}.num_batches_tracked                      ()
        14.weight                                       (128, 64, 3, 3)
        17.weight                                       (128, 128, 3, 3)
        {15,18}.{weight,bias,running_mean,running_var}  (128,)
        {15,18}.num_batches_tracked                     ()
        24.weight                                       (K, 128)
        24.bias                                         (K,)
    """
    in_channels = check_count(in_channels, "in_channels", allowed=(1, 3))
    num_classes = check_count(num_classes, "num_classes")
    rng = get_rng(rng)
    layers, cin = [], in_channels
    for width in VGG_SMALL_WIDTHS:
        for _ in range(2):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False, rng=rng, dtype=dtype),
                       nn.BatchNorm2d(width, dtype=dtype), nn.ReLU()]
            cin = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3, rng=rng),
               nn.Linear(cin, num_classes, rng=rng, dtype=dtype)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", rng=rng)
    model.needs_input_grad = False
    model.config = {"model": "vgg_small", "in_channels": in_channels, "num_classes": num_classes}
    return model
