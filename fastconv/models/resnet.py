"""CIFAR-style residual networks (He et al. 2015, "Deep Residual Learning", section 4.2).

A 3x3 convolution with 16 filters, then three stages of ``n`` BasicBlocks with 16, 32 and
64 filters (the second and third stages halve the image with stride 2), global average
pooling and a fully connected classifier: ``6n + 2`` weighted layers (ResNet-8: n = 1, as
MLPerf Tiny's image-classification model; ResNet-20: n = 3). Where a block changes the
shape, its shortcut is a 1x1 strided convolution + BatchNorm (the paper's option B).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import nn
from .._typing import DTypeLike, RNGLike
from ._common import check_count

#: filters per stage
STAGE_WIDTHS = (16, 32, 64)


def _conv3x3(cin, cout, stride, kw):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, **kw)


def basic_block(in_channels: int, out_channels: int, stride: int = 1, *, rng: RNGLike = None,
                dtype: DTypeLike = np.float32) -> nn.Sequential:
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))`` as ``Sequential(Residual, ReLU)``.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Of the first convolution (and of the projection shortcut).
    rng, dtype
        As for the layers.

    Returns
    -------
    Sequential
        ``0`` is the :class:`~fastconv.nn.Residual` (``body``: conv, bn, relu, conv, bn;
        ``shortcut``: conv 1x1 + bn, or None for the identity), ``1`` the final ReLU.

    Notes
    -----
    State-dict keys and shapes (``I`` = ``in_channels``, ``O`` = ``out_channels``; ``{a,b}``
    stands for each of the choices; the ``[projection]`` keys exist only when ``stride != 1``
    or ``I != O``)::

        0.body.0.weight                                      (O, I, 3, 3)
        0.body.3.weight                                      (O, O, 3, 3)
        0.body.{1,4}.{weight,bias,running_mean,running_var}  (O,)
        0.body.{1,4}.num_batches_tracked                     ()
        0.shortcut.0.weight                                  (O, I, 1, 1)  [projection]
        0.shortcut.1.{weight,bias,running_mean,running_var}  (O,)  [projection]
        0.shortcut.1.num_batches_tracked                     ()  [projection]
    """
    kw = dict(rng=rng, dtype=dtype)
    body = nn.Sequential(
        _conv3x3(in_channels, out_channels, stride, kw), nn.BatchNorm2d(out_channels, dtype=dtype),
        nn.ReLU(),
        _conv3x3(out_channels, out_channels, 1, kw), nn.BatchNorm2d(out_channels, dtype=dtype),
    )
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False, **kw),
            nn.BatchNorm2d(out_channels, dtype=dtype),
        )
    return nn.Sequential(nn.Residual(body, shortcut), nn.ReLU())


def cifar_resnet(blocks_per_stage: int | Sequence[int], in_channels: int = 1, num_classes: int = 10, *,
                 rng: RNGLike = None, dtype: DTypeLike = np.float32, name: str | None = None) -> nn.Sequential:
    """A CIFAR-style ResNet with ``blocks_per_stage`` BasicBlocks in each of its 3 stages.

    Parameters
    ----------
    blocks_per_stage : int
        ``n``: the network has ``6n + 2`` weighted layers.
    in_channels : {1, 3}
        Grey (MNIST, Fashion-MNIST) or colour images.
    num_classes : int
    rng : numpy.random.Generator or int, optional
        For the initialisation (Kaiming normal, fan_out, for convolutions; PyTorch's default
        for the classifier; BatchNorm weight 1, bias 0).
    dtype : float32 (default) or float64

    Returns
    -------
    Sequential
        ``0`` conv 3x3, ``1`` BatchNorm2d, ``2`` ReLU, ``3``-``5`` the stages (each a
        Sequential of blocks, see :func:`basic_block`), ``6`` AdaptiveAvgPool2d(1),
        ``7`` Flatten, ``8`` Linear(64, num_classes); with a ``config`` dict.

    Notes
    -----
    State-dict keys and shapes (PyTorch's for the same ``nn.Sequential`` of modules, see
    :mod:`fastconv.models`; ``n`` = ``blocks_per_stage``, ``C`` = ``in_channels``, ``K`` =
    ``num_classes``; ``{a,b}`` stands for each choice, ``{0..n-1}`` for each block
    index; block ``j`` of stage ``i`` is ``{3+i}.{j}``, with :func:`basic_block`'s keys)::

        0.weight                                                        (16, C, 3, 3)
        1.{weight,bias,running_mean,running_var}                        (16,)
        1.num_batches_tracked                                           ()
        3.{0..n-1}.0.body.{0,3}.weight                                  (16, 16, 3, 3)
        3.{0..n-1}.0.body.{1,4}.{weight,bias,running_mean,running_var}  (16,)
        3.{0..n-1}.0.body.{1,4}.num_batches_tracked                     ()
        4.0.0.body.0.weight                                             (32, 16, 3, 3)
        4.0.0.body.3.weight                                             (32, 32, 3, 3)
        4.{1..n-1}.0.body.{0,3}.weight                                  (32, 32, 3, 3)
        4.{0..n-1}.0.body.{1,4}.{weight,bias,running_mean,running_var}  (32,)
        4.{0..n-1}.0.body.{1,4}.num_batches_tracked                     ()
        4.0.0.shortcut.0.weight                                         (32, 16, 1, 1)
        4.0.0.shortcut.1.{weight,bias,running_mean,running_var}         (32,)
        4.0.0.shortcut.1.num_batches_tracked                            ()
        5.0.0.body.0.weight                                             (64, 32, 3, 3)
        5.0.0.body.3.weight                                             (64, 64, 3, 3)
        5.{1..n-1}.0.body.{0,3}.weight                                  (64, 64, 3, 3)
        5.{0..n-1}.0.body.{1,4}.{weight,bias,running_mean,running_var}  (64,)
        5.{0..n-1}.0.body.{1,4}.num_batches_tracked                     ()
        5.0.0.shortcut.0.weight                                         (64, 32, 1, 1)
        5.0.0.shortcut.1.{weight,bias,running_mean,running_var}         (64,)
        5.0.0.shortcut.1.num_batches_tracked                            ()
        8.weight                                                        (K, 64)
        8.bias                                                          (K,)
    """
    n = check_count(blocks_per_stage, "blocks_per_stage")
    in_channels = check_count(in_channels, "in_channels", allowed=(1, 3))
    num_classes = check_count(num_classes, "num_classes")
    from .._random import get_rng

    rng = get_rng(rng)
    kw = dict(rng=rng, dtype=dtype)
    stages, cin = [], STAGE_WIDTHS[0]
    for i, width in enumerate(STAGE_WIDTHS):
        blocks = []
        for j in range(n):
            stride = 2 if i > 0 and j == 0 else 1
            blocks.append(basic_block(cin, width, stride, **kw))
            cin = width
        stages.append(nn.Sequential(*blocks))
    model = nn.Sequential(
        _conv3x3(in_channels, STAGE_WIDTHS[0], 1, kw), nn.BatchNorm2d(STAGE_WIDTHS[0], dtype=dtype),
        nn.ReLU(),
        *stages,
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(STAGE_WIDTHS[-1], num_classes, **kw),
    )
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", rng=rng)
    model.needs_input_grad = False  # nothing needs the gradient of the images
    model.config = {"model": name or f"resnet{6 * n + 2}", "in_channels": in_channels,
                    "num_classes": num_classes}
    return model


def resnet8(in_channels: int = 1, num_classes: int = 10, *, rng: RNGLike = None,
            dtype: DTypeLike = np.float32) -> nn.Sequential:
    """ResNet-8: one BasicBlock per stage (78k parameters for 1 x 28 x 28 inputs and 10
    classes); see :func:`cifar_resnet`, whose key table (with ``n = 1``) lists its state-dict
    keys, e.g. ``3.0.0.body.0.weight (16, 16, 3, 3)``."""
    return cifar_resnet(1, in_channels, num_classes, rng=rng, dtype=dtype, name="resnet8")


def resnet20(in_channels: int = 1, num_classes: int = 10, *, rng: RNGLike = None,
             dtype: DTypeLike = np.float32) -> nn.Sequential:
    """ResNet-20: three BasicBlocks per stage (272k parameters); see :func:`cifar_resnet`,
    whose key table (with ``n = 3``) lists its state-dict keys, e.g.
    ``4.2.0.body.3.weight (32, 32, 3, 3)``."""
    return cifar_resnet(3, in_channels, num_classes, rng=rng, dtype=dtype, name="resnet20")
