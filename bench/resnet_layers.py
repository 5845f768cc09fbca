"""The convolutions of a CIFAR-style ResNet-8 on Fashion-MNIST shapes (batch 128, float32).

Shared by ``test_bench_resnet_layers.py`` (pytest-benchmark) and ``resnet_layers_quick.py``
(the interleaved tuning loop). Each shape: (C_in, H, C_out, k, stride, pad, needs_input_grad).
"""
import numpy as np

import fastconv
from fastconv.functional import conv as fconv
from fastconv.functional._geometry import conv_geometry

BATCH = 128

RESNET_LAYERS = {
    "c1_1to16_28": (1, 28, 16, 3, 1, 1, False),  # first layer: no grad_input
    "b1_16to16_28": (16, 28, 16, 3, 1, 1, True),
    "s2_16to32_28": (16, 28, 32, 3, 2, 1, True),
    "p2_16to32_1x1s2": (16, 28, 32, 1, 2, 0, True),
    "b2_32to32_14": (32, 14, 32, 3, 1, 1, True),
    "s3_32to64_14": (32, 14, 64, 3, 2, 1, True),
    "p3_32to64_1x1s2": (32, 14, 64, 1, 2, 0, True),
    "b3_64to64_7": (64, 7, 64, 3, 1, 1, True),
}


def layer_data(name, dtype=np.float32, batch=BATCH):
    """(x, w, b, gy, stride, pad, needs_input_grad) for one layer, seeded."""
    C, H, C_out, k, s, p, need_gi = RESNET_LAYERS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, C, H, H)).astype(dtype)
    w = (rng.standard_normal((C_out, C, k, k)) / np.sqrt(C * k * k)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    OH = (H + 2 * p - k) // s + 1
    gy = rng.standard_normal((batch, C_out, OH, OH)).astype(dtype)
    return x, w, b, gy, s, p, need_gi


def layer_flops(name, batch=BATCH):
    C, H, C_out, k, s, p, need_gi = RESNET_LAYERS[name]
    OH = (H + 2 * p - k) // s + 1
    return 2 * batch * C_out * OH * OH * C * k * k


def fastconv_callables(name, batch=BATCH):
    """{"fwd", "fwd+bwd", "grad_input", "grad_weight"} -> zero-argument callables."""
    x, w, b, gy, s, p, need_gi = layer_data(name, batch=batch)

    def fwd():
        return fastconv.conv2d(x, w, b, s, p)

    def fwd_bwd():
        fastconv.conv2d(x, w, b, s, p)
        return fastconv.conv2d_backward(gy, x, w, s, p, needs_input_grad=need_gi)

    g = conv_geometry(x.shape, w.shape, s, p)

    def grad_weight():
        return fconv.conv2d_backward_unchecked(gy, x, w, g, "auto", needs_input_grad=False)

    def grad_input():
        # the algorithm "auto" picks (this used to run im2col wherever the choice was not
        # "direct", Winograd included)
        gi = np.empty(x.shape, x.dtype)
        return fconv.conv2d_backward_unchecked(gy, x, w, g, "auto", True, gi, False)

    out = {"fwd": fwd, "fwd+bwd": fwd_bwd, "grad_weight": grad_weight}
    if need_gi:
        out["grad_input"] = grad_input
    return out


def torch_callables(name, batch=BATCH):
    import torch

    x, w, b, gy, s, p, need_gi = layer_data(name, batch=batch)
    tx = torch.from_numpy(x).requires_grad_(need_gi)
    tw = torch.from_numpy(w).requires_grad_(True)
    tb = torch.from_numpy(b).requires_grad_(True)
    tgy = torch.from_numpy(gy)
    conv = torch.nn.functional.conv2d

    def fwd():
        with torch.no_grad():
            return conv(tx, tw, tb, s, p)

    def fwd_bwd():
        y = conv(tx, tw, tb, s, p)
        y.backward(tgy)
        tx.grad = tw.grad = tb.grad = None

    def bwd(mask):
        return lambda: torch.ops.aten.convolution_backward(
            tgy, tx.detach(), tw.detach(), [w.shape[0]], [s, s], [p, p], [1, 1], False, [0, 0], 1,
            mask)

    out = {"fwd": fwd, "fwd+bwd": fwd_bwd, "grad_weight": bwd([False, True, True])}
    if need_gi:
        out["grad_input"] = bwd([True, False, False])
    return out


def set_threads(n):
    fastconv.set_num_threads(n)
    try:
        import torch
        torch.set_num_threads(n)
    except ImportError:
        pass
